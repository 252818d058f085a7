"""The result-store interface: what a backend keeps per task, and how callers wait for a result.

A backend stores one *meta* record per task id, in Celery's format (celery-wire.md §6.2), serialized with the
result serializer. Promises:

* ``store`` overwrites the record, except that a SUCCESS record is never replaced (a redelivered task that
  runs twice must not turn a success into something else); every stored state is announced to waiters.
* ``get_meta`` never blocks on the task: a missing record reads as PENDING.
* ``wait`` returns once the state is ready (SUCCESS, FAILURE, REVOKED), without busy polling where the store
  can notify (Redis pub/sub), else polling with a backoff; it raises `celeriac.errors.TimeoutError`.
* A store that notifies may also listen ahead, before a task is sent: see `celeriac.backends.prefetch`.
* Records expire after ``expires`` seconds (``None`` or 0: kept forever).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from celeriac._resource import AsyncResource
from celeriac.protocol import serializers

READY_STATES = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


class TaskMeta(TypedDict):
    """A stored task state, exactly the JSON object Celery keeps (celery-wire.md §6.2)."""

    task_id: str
    status: str
    result: Any
    traceback: str | None
    children: list[Any]
    date_done: str | None
    group_id: NotRequired[str | None]
    parent_id: NotRequired[str | None]
    name: NotRequired[str | None]
    args: NotRequired[Any]
    kwargs: NotRequired[Any]
    worker: NotRequired[str | None]
    retries: NotRequired[int | None]
    queue: NotRequired[str | None]


def pending_meta(task_id: str) -> TaskMeta:
    """The record of a task nothing is known about yet."""
    return TaskMeta(task_id=task_id, status="PENDING", result=None, traceback=None, children=[], date_done=None)


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """How results are encoded and kept.

    Attributes:
        serializer: the result serializer name (``result_serializer``).
        accept: content types accepted when reading results (``result_accept_content``).
        expires: default seconds a record is kept (``result_expires``); None keeps it forever.
        extra: ``result_backend_transport_options``.
        unread_limit: how many results a backend that subscribes ahead
            (`celeriac.backends.prefetch`) keeps track of before they are read
            (``result_subscribe_max_unread``); see `celeriac.backends.unread`.
    """

    serializer: str = "json"
    accept: Collection[str] = ("json",)
    expires: float | None = 86400.0
    extra: dict[str, Any] = field(default_factory=dict)
    unread_limit: int = 1000


class ResultBackend(AsyncResource):
    """A connection to one result store.

    Constructors store their arguments and do no I/O; ``connect()`` (or ``async with``) opens the store.

    Attributes:
        url: the backend URL with any password replaced by ``***`` (safe to log).
    """

    url: str

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self._dumps: Callable[[Any], tuple[str, str, bytes]] = serializers.for_name(options.serializer)
        self._accept = serializers.normalize_accept(options.accept)

    def encode_meta(self, meta: TaskMeta) -> bytes:
        """Serialize a record with the result serializer."""
        return self._dumps(meta)[2]

    def decode_meta(self, raw: bytes | str) -> TaskMeta:
        """Deserialize a record; JSON unless the serializer says otherwise. Raises DecodeError."""
        data = raw.encode() if isinstance(raw, str) else raw
        content_type = serializers.content_type_of(self.options.serializer)
        value: TaskMeta = serializers.loads(data, content_type, "utf-8", self._accept)
        return value

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the store. Raises `BackendError` when it cannot be reached."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release everything; idempotent."""

    @abc.abstractmethod
    async def store(self, meta: TaskMeta, expires: float | None = None) -> None:
        """Save ``meta`` for ``meta['task_id']`` and notify waiters (a SUCCESS record is never replaced).

        ``expires`` overrides ``options.expires`` for this record.
        """

    @abc.abstractmethod
    async def get_meta(self, task_id: str) -> TaskMeta:
        """The current record of ``task_id`` (PENDING when there is none)."""

    @abc.abstractmethod
    async def wait(self, task_id: str, timeout: float | None = None) -> TaskMeta:
        """Block until ``task_id`` is ready and return its record; `TimeoutError` after ``timeout`` s."""

    @abc.abstractmethod
    async def forget(self, task_id: str) -> None:
        """Delete the record of ``task_id``."""
