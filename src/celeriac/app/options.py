"""TypedDicts for the keyword options of ``@app.task`` and of ``apply_async`` / ``send_task``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypedDict


class SendOptions(TypedDict, total=False):
    """Options of ``apply_async`` and ``send_task`` (Celery's names)."""

    countdown: float
    eta: dt.datetime
    expires: float | dt.datetime
    queue: str
    routing_key: str
    exchange: str
    priority: int
    task_id: str
    headers: Mapping[str, Any]
    ignore_result: bool
    serializer: str
    compression: str
    shadow: str
    time_limit: float
    soft_time_limit: float
    retries: int
    parent_id: str
    root_id: str
    # canvas (celeriac.canvas): signatures (dicts) run after the task, the chain's rest, the chord body, the group
    link: Any
    link_error: Any
    chain: list[Mapping[str, Any]]
    chord: Mapping[str, Any]
    group_id: str
    group_index: int


class TaskOptions(TypedDict, total=False):
    """Options of ``@app.task`` (besides ``bind``)."""

    name: str
    queue: str
    ignore_result: bool
    acks_late: bool
    max_retries: int | None
    default_retry_delay: float
    autoretry_for: tuple[type[BaseException], ...]
    retry_kwargs: Mapping[str, Any]
    retry_backoff: bool | float
    retry_backoff_max: float
    retry_jitter: bool
    rate_limit: str | None
    time_limit: float | None
    soft_time_limit: float | None
    track_started: bool
    serializer: str
    priority: int | None
    reject_on_worker_lost: bool
