"""Results in Redis exactly as Celery 5 keeps them (celery-wire.md §6.1, §6.2), waited for through pub/sub.

* Key ``<global_keyprefix>celery-task-meta-<task id>``: the meta JSON (result serializer), with a TTL of
  ``expires`` seconds (``SET`` without one when it is 0/None).
* Storing: ``GET``, skip when the stored status is SUCCESS, else ``MULTI; SETEX; PUBLISH <key> <meta>; EXEC``.
  The GET and the transaction run under ``WATCH``, so a SUCCESS written in between is not overwritten either.
  Every state is PUBLISHed on the channel named like the key, which is what Celery clients wait on.
* Waiting: SUBSCRIBE to the key's channel, *then* GET (a result stored in between is not missed), then wait
  for a ready state on the channel. All waits of one backend share one pub/sub connection
  (`redis_listener.ResultListener`); it survives a dropped connection by re-subscribing and re-reading.

``global_keyprefix`` and connection settings come from ``options.extra`` (``result_backend_transport_options``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math

import redis.exceptions as redis_exc

from celeriac.backends.base import READY_STATES, BackendOptions, ResultBackend, TaskMeta, pending_meta
from celeriac.backends.redis_listener import ResultListener
from celeriac.errors import BackendError, CeleriacError
from celeriac.errors import TimeoutError as ResultTimeout
from celeriac.transports.redis_connection import make_client, raw_connection, redact, redis_errors

KEY_PREFIX = "celery-task-meta-"


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
            lambda: raw_connection(self._client), self.decode_meta, self._read_keys, self.url
        )
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
                await self._client.aclose()

    async def store(self, meta: TaskMeta, expires: float | None = None) -> None:
        """Save and announce ``meta`` unless a SUCCESS is stored already.

        ``expires`` (seconds) overrides ``options.expires``; 0 keeps the record forever.
        """
        self._check_open()
        key = self.key(meta["task_id"])
        payload = self.encode_meta(meta)
        ttl = self.options.expires if expires is None else expires
        with redis_errors(self.url, lost=BackendError, other=BackendError):
            async with self._client.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(key)
                        if self._is_success(await pipe.get(key)):
                            return
                        pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                        if ttl:
                            # Celery sends whole seconds; round up so a short TTL never becomes "now".
                            # (SETEX as Celery sends it; redis-py deprecates its setex() helper.)
                            pipe.execute_command("SETEX", key, max(1, math.ceil(ttl)), payload)
                        else:
                            pipe.set(key, payload)
                        pipe.publish(key, payload)
                        await pipe.execute()
                        return
                    except redis_exc.WatchError:
                        continue  # someone wrote the key between our GET and EXEC: look again

    def _is_success(self, raw: bytes | str | None) -> bool:
        if raw is None:
            return False
        try:
            return self.decode_meta(raw).get("status") == "SUCCESS"
        except CeleriacError:
            return False  # a record we cannot read is not a SUCCESS we must keep

    async def get_meta(self, task_id: str) -> TaskMeta:
        """The stored record (a missing key reads as PENDING). Raises `BackendError`, `DecodeError`."""
        self._check_open()
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

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskMeta:
        """Block until ``task_id`` is ready; raises celeriac's `TimeoutError` after ``timeout`` seconds.

        No polling: the record is read once after subscribing, then only pub/sub messages are awaited.
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
        with redis_errors(self.url, lost=BackendError, other=BackendError):
            await self._client.delete(self.key(task_id))
