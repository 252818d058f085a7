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
* The worker stores through `ResultBackend.store_task`, which also passes where the task message asked its
  states to go (`ReplyTo`: ``reply_to`` and ``correlation_id``); a store of records ignores that, a backend that
  answers by message (``rpc://``) sends the record there.

Two primitives for what is built on results (see each method for its promise, and
`celeriac.testing.contract.primitives` for the checks both stores pass):

* a **join** (`ResultBackend.join_add`), the atomic counter of a chord: members' results are recorded by index,
  idempotently, and the whole set is handed to exactly one caller, the one whose add completed it;
* a **lease with a fencing token** (`acquire_lease`, `renew_lease`, `release_lease`, `record_fenced`,
  `read_fenced`) for one leader at a time (HA beat): the token grows every time the lease changes hands, and a
  fenced write succeeds only under the current token, so a paused ex-leader cannot record anything.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NotRequired, TypedDict

from celeriac._resource import AsyncResource
from celeriac.errors import ConfigurationError, DecodeError
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
            (``result_subscribe_max_unread``); see `celeriac.backends.redis.unread`.
        broker_url: the broker's URL, for a backend that talks through the broker (``rpc://``).
        broker_use_ssl, broker_heartbeat, broker_connection_timeout: the broker link's settings, for the same.
    """

    serializer: str = "json"
    accept: Collection[str] = ("json",)
    expires: float | None = 86400.0
    extra: dict[str, Any] = field(default_factory=dict)
    unread_limit: int = 1000
    broker_url: str | None = None
    broker_use_ssl: bool | Mapping[str, Any] | None = None
    broker_heartbeat: float | None = 120.0
    broker_connection_timeout: float = 4.0


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where a task message asked its states to be sent: its ``reply_to`` property (the sending client's
    queue) and its ``correlation_id`` (the task id, unless the sender chose another)."""

    queue: str
    correlation_id: str


@dataclass(frozen=True, slots=True)
class ChordMember:
    """One header task's outcome as a chord join keeps it: its id, state and (encoded) result."""

    task_id: str
    state: str
    result: Any


@dataclass(frozen=True, slots=True)
class ChordJoin:
    """What one `ResultBackend.chord_part` call found.

    ``status``: ``waiting`` (header results still missing), ``claimed`` (the join is complete and this
    caller holds the dispatch claim ``token``: it must send the body, then call `ResultBackend.chord_done`),
    ``busy`` (complete, and another caller's claim is live), ``done`` (the body was dispatched already).
    ``members`` (claimed only): every header outcome in header order.
    """

    status: Literal["waiting", "claimed", "busy", "done"]
    token: str = ""
    members: tuple[ChordMember, ...] = ()


class ResultBackend(AsyncResource):
    """A connection to one result store.

    Constructors store their arguments and do no I/O; ``connect()`` (or ``async with``) opens the store.

    Attributes:
        url: the backend URL with any password replaced by ``***`` (safe to log).
        holds_leases: whether the lease and fenced-record methods work (beat needs them); False for a backend
            that keeps no records.
    """

    url: str
    holds_leases: ClassVar[bool] = True

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self._dumps: Callable[[Any], tuple[str, str, bytes]] = serializers.for_name(options.serializer)
        self._accept = serializers.normalize_accept(options.accept)

    def encode_meta(self, meta: TaskMeta) -> bytes:
        """Serialize a record with the result serializer."""
        return self._dumps(meta)[2]

    def encode_member(self, member: ChordMember) -> bytes:
        """A chord header outcome as Celery keeps it: ``[1, task id, state, result]``, result serializer."""
        return self._dumps([1, member.task_id, member.state, member.result])[2]

    def decode_member(self, raw: bytes) -> ChordMember:
        """The inverse of `encode_member`. Raises DecodeError."""
        value: Any = self.decode_meta(raw)
        if not isinstance(value, list) or len(value) != 4:
            raise DecodeError(f"a chord entry must be [1, id, state, result], not {type(value).__name__}")
        return ChordMember(str(value[1]), str(value[2]), value[3])

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

    async def store_task(self, meta: TaskMeta, reply: ReplyTo | None, expires: float | None = None) -> None:
        """`store` for a worker that runs the task: ``reply`` is where the task's message asked its states to go
        (None when it named no ``reply_to``). A store of records keeps ``meta`` by task id and has no use for
        ``reply``; a backend that answers by message (``rpc://``) overrides this and sends ``meta`` there."""
        await self.store(meta, expires)

    @abc.abstractmethod
    async def get_meta(self, task_id: str) -> TaskMeta:
        """The current record of ``task_id`` (PENDING when there is none)."""

    @abc.abstractmethod
    async def wait(self, task_id: str, timeout: float | None = None) -> TaskMeta:
        """Block until ``task_id`` is ready and return its record; `TimeoutError` after ``timeout`` s."""

    @abc.abstractmethod
    async def forget(self, task_id: str) -> None:
        """Delete the record of ``task_id``."""

    # -- join (chords) ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def join_add(
        self, group_id: str, index: int, meta: TaskMeta, size: int, expires: float | None = None
    ) -> list[TaskMeta] | None:
        """Record the result of member ``index`` (0 <= index < ``size``) of ``group_id``; atomic.

        Idempotent per index: the first record of an index is kept and a second add of the same index (a
        redelivered member) neither replaces it nor counts again. The add that records the last missing index
        returns every member's record, ordered by index; every other add (earlier ones, repeats, and adds
        after the set was complete) returns None. So the set is handed out exactly once, to exactly one
        caller, however the members race. The join is kept ``expires`` seconds (default ``options.expires``;
        0 keeps it) after its latest add.
        """

    # -- chords ----------------------------------------------------------------------------------------------
    def cannot_join(self) -> ConfigurationError:
        """The error of a backend that cannot join chords."""
        return ConfigurationError(
            f"the result backend {self.url} cannot join chords: use a Redis or SQLite result backend"
        )

    async def chord_start(self, group_id: str, size: int) -> None:
        """Prepare the join of chord ``group_id`` of ``size`` header tasks (before they are sent).

        Raises `ConfigurationError` on a backend that cannot join chords (the default).
        """
        raise self.cannot_join()

    async def chord_part(
        self, group_id: str, index: int, member: ChordMember, size: int | None, claim_ttl: float
    ) -> ChordJoin:
        """Record header task ``index``'s outcome in chord ``group_id`` and claim the dispatch if it completes.

        Atomic. A member already recorded (same task id and index: a redelivered header task) is not counted
        again. When the join is complete and no live claim exists, the caller gets the claim for
        ``claim_ttl`` seconds (a caller that dies with it lets it expire, and the next call claims again);
        once `chord_done` ran, every call reads ``done``. ``size`` is the size from the body's ``chord_size``
        when the backend has none recorded (a Celery 5.0 client). Keys expire with ``options.expires``.
        """
        raise self.cannot_join()

    async def chord_done(self, group_id: str, token: str) -> bool:
        """The body of ``group_id`` was dispatched under claim ``token``: drop the join, remember it is done.

        False when the claim was lost (expired and taken by another caller) before this call.
        """
        raise self.cannot_join()

    async def save_group(self, group_id: str, value: dict[str, Any]) -> None:
        """Keep a saved `GroupResult` (``{"result": [...]}``) for ``options.expires`` seconds."""
        raise ConfigurationError(f"the result backend {self.url} cannot save group results")

    async def restore_group(self, group_id: str) -> dict[str, Any] | None:
        """The saved group ``group_id`` (None when there is none)."""
        raise ConfigurationError(f"the result backend {self.url} cannot restore group results")

    async def forget_group(self, group_id: str) -> None:
        """Delete the saved group ``group_id``."""
        raise ConfigurationError(f"the result backend {self.url} cannot forget group results")

    # -- lease with a fencing token (one leader) -----------------------------------------------------------
    @abc.abstractmethod
    async def acquire_lease(self, name: str, holder: str, ttl: float) -> int | None:
        """Take the lease ``name`` for ``holder`` for ``ttl`` seconds; its fencing token, or None if taken.

        Succeeds when nobody holds the lease (never held, released, or expired) or ``holder`` holds it already
        (then it is extended and keeps its token). The token strictly increases each time the lease changes
        hands (it is never reused, also after expiry); of concurrent acquirers exactly one gets it.
        """

    @abc.abstractmethod
    async def renew_lease(self, name: str, holder: str, token: int, ttl: float) -> bool:
        """Extend the lease to ``ttl`` seconds from now if ``holder`` still holds it under ``token``.

        False when it expired or changed hands (the caller is no longer the leader; it may try `acquire_lease`).
        """

    @abc.abstractmethod
    async def release_lease(self, name: str, holder: str, token: int) -> bool:
        """Give the lease up now if ``holder`` holds it under ``token`` (else do nothing and return False)."""

    @abc.abstractmethod
    async def record_fenced(self, name: str, token: int, key: str, value: bytes) -> bool:
        """Set ``key`` to ``value`` in the records of lease ``name``, only while ``token`` is its live token.

        Atomic with the token check: False (nothing written) once the lease expired or changed hands, so a
        leader that was paused past its lease cannot record anything its successor might also record.
        """

    @abc.abstractmethod
    async def read_fenced(self, name: str, key: str) -> bytes | None:
        """The value last recorded under ``key`` by a holder of lease ``name`` (None if nothing was)."""
