"""Settings: how tasks are sent, routed, acknowledged and limited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celeriac.settings.setting import OPT_NUM, OPT_STR, Routes, Setting, SettingsBase


class TaskSettings(SettingsBase):
    """How tasks are sent, routed, acknowledged and limited."""

    __slots__ = ()

    task_serializer = Setting[str]("json", (str,))
    task_compression = Setting[str | None](None, OPT_STR)
    accept_content = Setting[Sequence[str]](["json"], (list, tuple))
    task_acks_late = Setting[bool](False, (bool,))
    task_acks_on_failure_or_timeout = Setting[bool](True, (bool,))
    task_reject_on_worker_lost = Setting[bool](False, (bool,))
    task_default_queue = Setting[str]("celery", (str,))
    task_default_exchange = Setting[str | None](None, OPT_STR)
    task_default_routing_key = Setting[str | None](None, OPT_STR)
    task_default_priority = Setting[int | None](None, (int, type(None)))
    task_default_delivery_mode = Setting[int](2, (int,))
    task_routes = Setting[Routes](None, (dict, list, tuple, type(None)))
    # Queue(...) declarations (celeriac.queues): what a worker consumes without -Q, and how each is routed.
    task_queues = Setting[Any](None, (list, tuple, dict, type(None)))
    task_annotations = Setting[Any](None, (dict, list, tuple, object, type(None)))
    task_ignore_result = Setting[bool](False, (bool,))
    task_store_errors_even_if_ignored = Setting[bool](False, (bool,))
    task_track_started = Setting[bool](False, (bool,))
    task_time_limit = Setting[float | None](None, OPT_NUM)
    task_soft_time_limit = Setting[float | None](None, OPT_NUM)
    task_default_rate_limit = Setting[str | None](None, OPT_STR)
    task_always_eager = Setting[bool](False, (bool,))
    task_eager_propagates = Setting[bool](False, (bool,))
    task_send_sent_event = Setting[bool](False, (bool,))
    task_protocol = Setting[int](2, (int,))
    task_create_missing_queues = Setting[bool](True, (bool,))
