"""Results in Redis exactly as Celery 5 keeps them (celery-wire.md §6.1, §6.2), waited for through pub/sub.

* Key ``<global_keyprefix>celery-task-meta-<task id>``: the meta JSON (result serializer), with a TTL of
  ``expires`` seconds (``SET`` without one when it is 0/None).
* Storing: one Lua script (`STORE_SCRIPT`) that keeps a stored SUCCESS, else ``SETEX`` and ``PUBLISH <key> <meta>``
  (the commands Celery sends in a MULTI block), atomically and in one round trip.
  Every state is PUBLISHed on the channel named like the key, which is what Celery clients wait on.
* Waiting: SUBSCRIBE to the key's channel, *then* GET (a result stored in between is not missed), then wait
  for a ready state on the channel. All waits of one backend share one pub/sub connection
  (`listener.ResultListener` over `link.PubSubLink`); it survives a dropped connection by re-subscribing and
  re-reading.
* Subscribing at send time (`RedisBackend.expect`, Celery's ``on_task_call``; `ahead`): SUBSCRIBE goes out
  before the task is published; the ready record published on the channel is kept, so the ``wait`` that follows
  returns it without a command. Bounded by ``options.unread_limit`` (`unread`).
* The join and the lease of `celeriac.backends.base`: one Lua script each (`primitives`).

``global_keyprefix`` and connection settings come from ``options.extra`` (``result_backend_transport_options``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from typing import Any

from celeriac._redis.client import make_client, raw_connection
from celeriac._redis.errors import redis_errors
from celeriac._redis.lane import Lane
from celeriac._redis.urls import redact
from celeriac.backends.base import (
    READY_STATES,
    BackendOptions,
    ChordJoin,
    ChordMember,
    ResultBackend,
    TaskMeta,
    pending_meta,
)
from celeriac.backends.redis.chords import RedisChords
from celeriac.backends.redis.listener import ListenerStatistics, ResultListener
from celeriac.backends.redis.primitives import RedisPrimitives
from celeriac.errors import BackendError, CeleriacError
from celeriac.errors import TimeoutError as ResultTimeout

KEY_PREFIX = "celery-task-meta-"

# One round trip, atomic: keep an existing SUCCESS record; else SETEX (SET when no TTL) and PUBLISH the same bytes
# on the channel named like the key, exactly the commands Celery's backend sends in its MULTI block. A record
# that is not JSON (another result serializer) is never taken for a SUCCESS.
STORE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then
    local ok, decoded = pcall(cjson.decode, current)
    if ok and type(decoded) == 'table' and decoded['status'] == 'SUCCESS' then
        return 0
    end
end
if tonumber(ARGV[2]) > 0 then
    redis.call('SETEX', KEYS[1], ARGV[2], ARGV[1])
else
    redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
"""


class RedisBackend(ResultBackend):
    """A Celery-compatible result store in one Redis database.

    Args:
        url: ``redis://``, ``rediss://`` or ``redis+socket://`` URL.
        options: serializer, accepted content, default expiry; ``extra`` may set ``global_keyprefix``.

    Raises:
        ConfigurationError: a bad URL or serializer (no I/O happens here).
    """

    def __init__(self, url: str, options: BackendOptions | None = None) -> None:
        super().__init__(options or BackendOptions())
        self.url = redact(url)
        self._client = make_client(url, self.options.extra)
        self._prefix = str(self.options.extra.get("global_keyprefix") or "")
        self._listener = ResultListener(
            lambda: raw_connection(self._client),
            self.decode_meta,
            self._read_keys,
            self.url,
            unread_limit=self.options.unread_limit,
        )
        self._ahead = self._listener.ahead
        self._store_script = self._client.register_script(STORE_SCRIPT)
        self._store_lane = Lane(self._client)  # a worker stores one result after another, mostly
        self._primitives = RedisPrimitives(self._client, self._prefix, self.url)
        ordered = bool(self.options.extra.get("result_chord_ordered", True))
        self._chords = RedisChords(self._client, self._prefix, self.url, ordered)
        self._closed = False

    def key(self, task_id: str) -> str:
        """The key (and pub/sub channel) of ``task_id``'s record."""
        return f"{self._prefix}{KEY_PREFIX}{task_id}"

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"the result backend for {self.url} is closed")

    async def connect(self) -> None:
        """Check that Redis answers. Raises `BackendError` when it cannot be reached."""
        self._check_open()
        with redis_errors(self.url, lost=BackendError, other=BackendError):
            await self._client.ping()

    async def close(self) -> None:
        """Drop every connection; pending waits raise `BackendError`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._listener.close()
        finally:
            with contextlib.suppress(Exception):  # closing sockets of a dead server may complain
                await self._store_lane.close()
            with contextlib.suppress(Exception):
                await self._client.aclose()

    async def store(self, meta: TaskMeta, expires: float | None = None) -> None:
        """Save and announce ``meta`` unless a SUCCESS is stored already.

        ``expires`` (seconds) overrides ``options.expires``; 0 keeps the record forever.
        """
        self._check_open()
        key = self.key(meta["task_id"])
        payload = self.encode_meta(meta)
        ttl = self.options.expires if expires is None else expires
        # Whole seconds as Celery sends them; round up so a short TTL never becomes "now". 0: no expiry.
        seconds = max(1, math.ceil(ttl)) if ttl else 0
        with redis_errors(self.url, lost=BackendError, other=BackendError):
            await self._store_lane.script(self._store_script, [key], [payload, seconds])

    async def get_meta(self, task_id: str) -> TaskMeta:
        """The stored record (a missing key reads as PENDING). Raises `BackendError`, `DecodeError`.

        A ready record already received through a send-time subscription is returned without a command.
        """
        self._check_open()
        received = self._ahead.received(self.key(task_id))
        if received is not None:
            return received
        with redis_errors(self.url, lost=BackendError, other=BackendError):
            raw = await self._client.get(self.key(task_id))
        return pending_meta(task_id) if raw is None else self.decode_meta(raw)

    async def _read_keys(self, keys: list[str]) -> dict[str, TaskMeta]:
        """The readable, ready records among ``keys`` (the listener's catch-up read after reconnecting)."""
        with redis_errors(self.url, lost=BackendError, other=BackendError):
            values = await self._client.mget(keys)
        found: dict[str, TaskMeta] = {}
        for key, raw in zip(keys, values, strict=True):
            if raw is None:
                continue
            try:
                meta = self.decode_meta(raw)
            except CeleriacError:
                continue
            if meta.get("status") in READY_STATES:
                found[key] = meta
        return found

    async def expect(self, task_id: str) -> None:
        """SUBSCRIBE to ``task_id``'s channel before the task is sent, without waiting for Redis's answer.

        The ready record published there is kept (bounded) for the `wait` that follows. Raises `BackendError`
        only when the backend is closed.
        """
        self._check_open()
        await self._ahead.expect(self.key(task_id))

    def take_received(self, task_id: str, wait: float = 0.0) -> TaskMeta | None:
        """Thread-safe, for a sync caller outside the loop: the ready record of ``task_id`` received through
        `expect`, waiting up to ``wait`` seconds while it is still expected; None otherwise."""
        return self._ahead.take_received(self.key(task_id), wait)

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskMeta:
        """Block until ``task_id`` is ready; raises celeriac's `TimeoutError` after ``timeout`` seconds.

        No polling: the record is read once after subscribing, then only pub/sub messages are awaited. A
        record already received (the task was sent with `expect`) is returned without any command.
        """
        self._check_open()
        key = self.key(task_id)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await self._listener.wait(key, lambda: self.get_meta(task_id))
        except TimeoutError as exc:
            if deadline.expired():
                raise ResultTimeout(f"the result of task {task_id} was not ready within {timeout}s") from exc
            raise

    async def forget(self, task_id: str) -> None:
        """Delete the record of ``task_id``."""
        self._check_open()
        self._ahead.discard(self.key(task_id))
        with redis_errors(self.url, lost=BackendError, other=BackendError):
            await self._client.delete(self.key(task_id))

    async def join_add(
        self, group_id: str, index: int, meta: TaskMeta, size: int, expires: float | None = None
    ) -> list[TaskMeta] | None:
        """See `ResultBackend.join_add`: one Lua script (`primitives`). Raises ValueError for an index outside."""
        self._check_open()
        if not 0 <= index < size:
            raise ValueError(f"member index {index} is outside a group of {size}")
        ttl = self.options.expires if expires is None else expires
        seconds = max(1, math.ceil(ttl)) if ttl else 0
        found = await self._primitives.join_add(group_id, index, self.encode_meta(meta), size, seconds)
        return None if found is None else [self.decode_meta(raw) for raw in found]

    def _ttl(self) -> int:
        ttl = self.options.expires
        return max(1, math.ceil(ttl)) if ttl else 0

    async def chord_start(self, group_id: str, size: int) -> None:
        """See `ResultBackend.chord_start`: ``.s`` set, ``.c`` dropped (`chords`)."""
        self._check_open()
        await self._chords.start(group_id, size, self._ttl())

    async def chord_part(
        self, group_id: str, index: int, member: ChordMember, size: int | None, claim_ttl: float
    ) -> ChordJoin:
        """See `ResultBackend.chord_part`: one Lua script on Celery's keys (`chords`)."""
        self._check_open()
        token = uuid.uuid4().hex
        claim = (token, max(1, math.ceil(claim_ttl)))
        entry = self.encode_member(member)
        status, entries = await self._chords.part(group_id, member.task_id, index, entry, size, self._ttl(), claim)
        if status != "claimed":
            return ChordJoin(status)  # type: ignore[arg-type]  # the script returns one of the four
        return ChordJoin("claimed", token, tuple(self.decode_member(e) for e in entries))

    async def chord_done(self, group_id: str, token: str) -> bool:
        """See `ResultBackend.chord_done`."""
        self._check_open()
        return await self._chords.done(group_id, token, self._ttl())

    async def save_group(self, group_id: str, value: dict[str, Any]) -> None:
        """``celery-taskset-meta-<id>``, as Celery's ``GroupResult.save``."""
        self._check_open()
        await self._chords.save_group(group_id, self._dumps(value)[2], self._ttl())

    async def restore_group(self, group_id: str) -> dict[str, Any] | None:
        """The saved group, or None."""
        self._check_open()
        raw = await self._chords.restore_group(group_id)
        return None if raw is None else dict(self.decode_meta(raw))

    async def forget_group(self, group_id: str) -> None:
        """Delete the saved group."""
        self._check_open()
        await self._chords.forget_group(group_id)

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> int | None:
        self._check_open()
        return await self._primitives.acquire(name, holder, ttl)

    async def renew_lease(self, name: str, holder: str, token: int, ttl: float) -> bool:
        self._check_open()
        return await self._primitives.renew(name, holder, token, ttl)

    async def release_lease(self, name: str, holder: str, token: int) -> bool:
        self._check_open()
        return await self._primitives.release(name, holder, token)

    async def record_fenced(self, name: str, token: int, key: str, value: bytes) -> bool:
        self._check_open()
        return await self._primitives.record_fenced(name, token, key, value)

    async def read_fenced(self, name: str, key: str) -> bytes | None:
        self._check_open()
        return await self._primitives.read_fenced(name, key)

    def statistics(self) -> ListenerStatistics:
        """What the result listener holds: subscriptions, waits, send-time subscriptions, unread records."""
        return self._listener.statistics()
