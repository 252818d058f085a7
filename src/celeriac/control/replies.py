"""The reply shapes of the built-in remote-control commands, as TypedDicts (celery-wire.md §5.4-§5.7).

Each node answers ``{hostname: reply}``; these types describe ``reply``, the value a handler returns, so a reader
(the dashboard, a test, ``celeriac inspect``) can use the fields without describing them again. They are exactly
what Celery's workers send, which is what ``celery inspect`` and Flower read: a change here changes the wire.

Commands that answer ``{"ok": text}`` or ``{"error": text}`` use `OkReply`/`ErrorReply`; ``registered`` and
``revoked`` answer a list of strings, ``conf`` a mapping of setting name to (masked) value.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict


class OkReply(TypedDict):
    """A command that did what it was asked: ``{"ok": text}`` (``ping``: ``"pong"``; ``report``: the report)."""

    ok: str


class ErrorReply(TypedDict):
    """A command that failed or is unknown: ``{"error": text}`` (a repr of the exception, or Celery's words)."""

    error: str


class ClockReply(TypedDict):
    """``clock``: the node's Lamport clock."""

    clock: int


class HelloReply(TypedDict):
    """``hello`` (mingle): the revoked ids the node knows and its clock."""

    revoked: list[str]
    clock: int


class RequestInfo(TypedDict):
    """One held request in ``active``, ``reserved``, ``scheduled`` and ``query_task`` (§5.5).

    ``args``/``kwargs`` are the values, or their reprs (strings) when the caller asked for ``safe``.
    """

    id: str
    name: str
    args: list[Any] | str
    kwargs: dict[str, Any] | str
    type: str
    hostname: str
    time_start: float | None
    acknowledged: bool
    delivery_info: dict[str, Any]
    worker_pid: int | None


class ScheduledInfo(TypedDict):
    """One ``scheduled`` entry: a request waiting for its ETA."""

    eta: str | None
    priority: int
    request: RequestInfo


class ExchangeInfo(TypedDict):
    name: str
    type: str
    arguments: None
    durable: bool
    passive: bool
    auto_delete: bool
    delivery_mode: None
    no_declare: bool


"""The exchange of one `QueueInfo` (kombu's ``Exchange.as_dict()``)."""


class QueueInfo(TypedDict):
    name: str
    exchange: ExchangeInfo
    routing_key: str
    queue_arguments: None
    binding_arguments: None
    consumer_arguments: None
    durable: bool
    exclusive: bool
    auto_delete: bool
    no_ack: bool
    alias: None
    bindings: list[Any]
    no_declare: None
    expires: None
    message_ttl: None
    max_length: None
    max_length_bytes: None
    max_priority: None


"""One ``active_queues`` entry (§5.7): kombu's ``Queue.as_dict()``."""

PoolStats = TypedDict(
    "PoolStats",
    {
        "implementation": str,
        "max-concurrency": int,
        "processes": list[int],
        "max-tasks-per-child": int | str,
        "put-guarded-by-semaphore": bool,
        "timeouts": list[float],
        "running": int,
        "waiting": int,
        "completed": int,
        "writes": NotRequired[dict[str, Any]],  # prefork only, as Celery's prefork reports it
    },
)
"""The ``pool`` part of `StatsReply` (the keys with hyphens are Celery's)."""


class BrokerInfo(TypedDict):
    """The ``broker`` part of `StatsReply`: where the broker is, without a password."""

    hostname: str | None
    userid: str | None
    virtual_host: str
    port: int | None
    insist: bool
    ssl: bool
    transport: str
    connect_timeout: int
    transport_options: dict[str, Any]
    login_method: None
    uri_prefix: None
    heartbeat: float
    failover_strategy: str
    alternates: list[str]


class AutoscalerInfo(TypedDict):
    """The ``autoscaler`` part of `StatsReply` under ``--autoscale``: bounds, pool slots now, requests held."""

    max: int
    min: int
    current: int
    qty: int


class StatsReply(TypedDict):
    """``stats`` (§5.6). ``rusage`` is the process's resource usage, or ``"N/A"`` where there is none;
    ``autoscaler`` is there only when the worker autoscales (as Celery's)."""

    total: dict[str, int]
    pid: int
    clock: str
    uptime: int
    pool: PoolStats
    broker: BrokerInfo
    prefetch_count: int
    rusage: dict[str, Any] | str
    sw_ident: str
    autoscaler: NotRequired[AutoscalerInfo]


QueryTaskReply = dict[str, list[Any]]
"""``query_task``: ``{task id: [kind, RequestInfo]}``, kind being ``active``, ``reserved`` or ``scheduled``."""

__all__ = [
    "AutoscalerInfo",
    "BrokerInfo",
    "ClockReply",
    "ErrorReply",
    "ExchangeInfo",
    "HelloReply",
    "OkReply",
    "PoolStats",
    "QueryTaskReply",
    "QueueInfo",
    "RequestInfo",
    "ScheduledInfo",
    "StatsReply",
]
