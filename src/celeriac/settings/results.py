"""Settings: where results go and how they are kept and read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celeriac.settings.setting import OPT_NUM, OPT_STR, Setting, SettingsBase


class ResultSettings(SettingsBase):
    """Where results go and how they are kept and read."""

    __slots__ = ()

    result_backend = Setting[str | None](None, OPT_STR, "result URL; default: the broker's SQLite file")
    result_backend_transport_options = Setting[dict[str, Any]]({}, (dict,))
    result_serializer = Setting[str]("json", (str,))
    result_accept_content = Setting[Sequence[str] | None](None, (list, tuple, type(None)))
    result_expires = Setting[float | None](86400, OPT_NUM, "seconds results are kept; None: forever")
    result_extended = Setting[bool](False, (bool,), "store name, args, kwargs, worker, queue with results")
    result_subscribe_on_send = Setting[bool](
        True,
        (bool,),
        "Redis results: subscribe to a task's result channel before sending it (as Celery does), so get() finds "
        "the result already received; False: subscribe only when get() is called",
    )
    result_subscribe_max_unread = Setting[int](
        1000,
        (int,),
        "most send-time subscriptions not waited on, and most received results not read, kept per event loop "
        "(each; the oldest are dropped first, and their get() subscribes and reads the key instead)",
    )
