"""TypedDicts for the keyword options of ``@app.task`` and of ``apply_async`` / ``send_task``."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping
from typing import Any, TypedDict

from celeriac.errors import ConfigurationError


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
    # recorded in the running task's result as a child (Celery's default True; only inside a running task)
    add_to_parent: bool
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
    typing: bool
    trail: bool


TASK_OPTIONS = frozenset(TaskOptions.__annotations__)
"""Every option ``@app.task`` takes besides ``bind`` and ``base``."""

NOT_SUPPORTED = {
    "throws": "expected exceptions are logged as any other failure",
    "send_events": "task events are on or off per worker (worker_send_task_events, -E)",
    "lazy": "the registry has no lazy tasks",
    "pydantic": "pydantic arguments are not converted",
    "expires": "give expires= when sending",
    "compression": "set task_compression or give compression= when sending",
    "store_errors_even_if_ignored": "set task_store_errors_even_if_ignored",
    "acks_on_failure_or_timeout": "set task_acks_on_failure_or_timeout",
    "shared": "every task is registered in the app that declares it",
}
"""Celery task options celeriac refuses, and why (never silently ignored)."""


def check_task_options(options: Mapping[str, Any]) -> None:
    """Raise a one-line ConfigurationError for a task option celeriac does not take (with "did you mean")."""
    for name in options:
        if name in TASK_OPTIONS:
            continue
        if name in NOT_SUPPORTED:
            raise ConfigurationError(f"task option {name!r} is not supported by celeriac: {NOT_SUPPORTED[name]}")
        found = difflib.get_close_matches(name, [*TASK_OPTIONS, "bind", "base"], n=1)
        hint = f"; did you mean {found[0]!r}?" if found else ""
        raise ConfigurationError(f"unknown task option {name!r}{hint}")


SEND_OPTIONS = frozenset(SendOptions.__annotations__)
"""Every option ``apply_async``/``send_task`` take."""

SEND_NOT_SUPPORTED = {
    "retry": "publishing is not retried by option: a send that fails raises",
    "retry_policy": "publishing is not retried by option: a send that fails raises",
    "reply_to": "results go to the result backend",
    "mandatory": "not an option of celeriac's transports",
    "immediate": "not an option of celeriac's transports",
    "declare": "queues are declared by name (task_create_missing_queues)",
    "connection": "each app keeps its own connections",
    "producer": "each app keeps its own producers",
    "publisher": "each app keeps its own producers",
    "router": "routes come from task_routes",
    "exchange_type": "exchanges are direct",
    "stamped_headers": "stamping is not implemented",
    "argsrepr": "the args are shown as sent",
    "kwargsrepr": "the kwargs are shown as sent",
}
"""Celery's send options celeriac refuses, and why."""


def check_send_options(options: Mapping[str, Any]) -> None:
    """Raise TypeError for a send option celeriac does not take (with "did you mean"), never ignore it."""
    if options.keys() <= SEND_OPTIONS:  # the common case: one set comparison per send
        return
    for name in options:
        if name in SEND_OPTIONS:
            continue
        if name in SEND_NOT_SUPPORTED:
            raise TypeError(f"send option {name!r} is not supported by celeriac: {SEND_NOT_SUPPORTED[name]}")
        found = difflib.get_close_matches(name, SEND_OPTIONS, n=1)
        hint = f"; did you mean {found[0]!r}?" if found else ""
        raise TypeError(f"unknown send option {name!r}{hint}")
