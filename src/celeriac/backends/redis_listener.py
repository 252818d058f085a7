"""One pub/sub connection shared by every result wait of a Redis backend.

``wait(channel)`` subscribes (the first waiter of a channel sends SUBSCRIBE; later ones share it), waits for
Redis to confirm, reads the current record, and then waits for a PUBLISH of a ready state. When the last
waiter of a channel leaves, the channel is unsubscribed.

Replies to SUBSCRIBE arrive in command order, so each channel keeps a FIFO of confirmation futures and each
``subscribe`` reply resolves the oldest: a waiter never mistakes the confirmation of an earlier, since
abandoned subscription for its own.

When the connection drops, the reader reconnects with a backoff while anyone waits, re-subscribes every
waited channel, and once Redis confirmed, re-reads those keys (MGET): a result published while the link was
down is not missed (Celery's client does the same, celery-wire.md §6.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.connection import AbstractConnection

from celeriac._redis import raise_if_cancelled, redis_errors
from celeriac.backends.base import READY_STATES, TaskMeta
from celeriac.errors import BackendError, CeleriacError

log = logging.getLogger("celeriac.backends.redis")

Decode = Callable[[bytes], TaskMeta]
ReadReady = Callable[[list[str]], Awaitable[dict[str, TaskMeta]]]


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


class ResultListener:
    """Routes result PUBLISHes to the coroutines waiting for them.

    Args:
        new_connection: makes an unconnected connection (no I/O).
        decode: reads a published record (raises a CeleriacError when it cannot).
        read_ready: reads the ready records among some keys, for the catch-up after a reconnect.
        where: the redacted URL, for messages.
    """

    def __init__(
        self,
        new_connection: Callable[[], AbstractConnection],
        decode: Decode,
        read_ready: ReadReady,
        where: str,
    ) -> None:
        self._new_connection = new_connection
        self._decode = decode
        self._read_ready = read_ready
        self._where = where
        self._connection: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # held while connecting, sending, and reconnecting
        self._waiters: dict[str, set[asyncio.Future[TaskMeta]]] = {}
        self._subscribed: dict[str, asyncio.Future[None]] = {}  # channel -> its current subscription's confirm
        self._confirms: dict[str, deque[asyncio.Future[None]]] = {}  # channel -> confirms in command order
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    async def wait(self, channel: str, read_current: Callable[[], Awaitable[TaskMeta]]) -> TaskMeta:
        """The first ready record seen on ``channel``, or ``read_current()`` once subscribed if it is ready."""
        if self._closed:
            raise BackendError(f"the result backend for {self._where} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TaskMeta] = loop.create_future()
        waiters = self._waiters.setdefault(channel, set())
        waiters.add(future)
        confirm = self._subscribed.get(channel)
        if confirm is None:
            # Registered before any await, so a waiter arriving meanwhile waits for this same confirmation.
            confirm = self._subscribed[channel] = loop.create_future()
            self._spawn(self._subscribe(channel, confirm))
        try:
            await asyncio.shield(confirm)
            meta = await read_current()
            if meta.get("status") in READY_STATES:
                return meta
            return await future
        finally:
            waiters.discard(future)
            if not waiters and self._waiters.get(channel) is waiters:
                del self._waiters[channel]
                self._subscribed.pop(channel, None)
                self._spawn(self._unsubscribe(channel))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        # Sends run as tasks of their own: a waiter cancelled mid-send must not leave half a command behind.
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _subscribe(self, channel: str, confirm: asyncio.Future[None]) -> None:
        try:
            async with self._lock:
                connection = await self._ensure_connected()
                self._confirms.setdefault(channel, deque()).append(confirm)
                with redis_errors(self._where, lost=BackendError, other=BackendError):
                    await connection.send_command("SUBSCRIBE", channel)
        except Exception as exc:  # handed to every waiter of this subscription
            if not confirm.done():
                confirm.set_exception(exc if isinstance(exc, CeleriacError) else BackendError(str(exc)))
            if self._subscribed.get(channel) is confirm:
                del self._subscribed[channel]

    async def _unsubscribe(self, channel: str) -> None:
        async with self._lock:
            if channel in self._waiters or self._connection is None:
                return  # a new waiter came back for it, or there is nothing to unsubscribe from
            with (
                contextlib.suppress(CeleriacError),
                redis_errors(self._where, lost=BackendError, other=BackendError),
            ):
                await self._connection.send_command("UNSUBSCRIBE", channel)

    async def _ensure_connected(self) -> AbstractConnection:
        """The live connection, opening it (and starting the reader) if needed. Call with the lock held."""
        if self._connection is not None and self._reader is not None and not self._reader.done():
            return self._connection
        connection = self._new_connection()
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            await connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        self._connection = connection
        self._reader = asyncio.create_task(self._read(connection), name="celeriac-redis-results")
        return connection

    # -- reading -----------------------------------------------------------------------------------------------

    async def _read(self, connection: AbstractConnection) -> None:
        while True:
            raise_if_cancelled()
            try:
                with redis_errors(self._where, lost=BackendError, other=BackendError):
                    reply = await connection.read_response()
            except BackendError as exc:
                if self._closed:
                    return
                log.warning("result pub/sub connection lost, reconnecting: %s", exc)
                reconnected = await self._reconnect()
                if reconnected is None:
                    return
                connection = reconnected
                continue
            self._dispatch(reply)

    def _dispatch(self, reply: Any) -> None:
        if not isinstance(reply, list) or len(reply) != 3:
            return
        kind, channel = _text(reply[0]), _text(reply[1])
        if kind == "subscribe":
            pending = self._confirms.get(channel)
            if pending:
                confirm = pending.popleft()
                if not confirm.done():
                    confirm.set_result(None)
                if not pending:
                    del self._confirms[channel]
        elif kind == "message":
            waiters = self._waiters.get(channel)
            if not waiters:
                return
            try:
                meta = self._decode(reply[2])
            except CeleriacError as exc:
                log.warning("unreadable result published on %r: %s", channel, exc)
                return
            if meta.get("status") in READY_STATES:
                self._resolve(channel, meta)

    def _resolve(self, channel: str, meta: TaskMeta) -> None:
        for future in list(self._waiters.get(channel, ())):
            if not future.done():
                future.set_result(meta)

    async def _reconnect(self) -> AbstractConnection | None:
        """Open a new connection and re-subscribe, retrying while anyone waits; None when nobody does."""
        stale = [confirm for pending in self._confirms.values() for confirm in pending]
        self._confirms.clear()
        delay = 0.05
        async with self._lock:
            with contextlib.suppress(Exception):
                if self._connection is not None:
                    await self._connection.disconnect()
            self._connection = None
            while not self._closed and self._waiters:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                connection = self._new_connection()
                channels = list(self._waiters)
                confirms: list[asyncio.Future[None]] = []
                try:
                    with redis_errors(self._where, lost=BackendError, other=BackendError):
                        await connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                        for channel in channels:
                            confirm = asyncio.get_running_loop().create_future()
                            self._confirms.setdefault(channel, deque()).append(confirm)
                            confirms.append(confirm)
                        await connection.send_command("SUBSCRIBE", *channels)
                except BackendError as exc:
                    self._confirms.clear()
                    log.debug("result pub/sub reconnect failed: %s", exc)
                    continue
                self._connection = connection
                self._spawn(self._catch_up(channels, confirms, stale))
                return connection
        for confirm in stale:
            confirm.cancel()
        return None

    async def _catch_up(
        self, channels: list[str], confirms: list[asyncio.Future[None]], stale: list[asyncio.Future[None]]
    ) -> None:
        """Once re-subscribed, read the waited keys once and release waiters stuck on the dead link."""
        results = await asyncio.gather(*confirms, return_exceptions=True)
        if any(isinstance(result, BaseException) for result in results):
            return  # the new link broke too; the next reconnect catches up
        for confirm in stale:
            if not confirm.done():
                confirm.set_result(None)
        waited = [channel for channel in channels if channel in self._waiters]
        if not waited:
            return
        try:
            ready = await self._read_ready(waited)
        except CeleriacError as exc:
            log.warning("could not re-read results after reconnecting: %s", exc)
            return
        for channel, meta in ready.items():
            self._resolve(channel, meta)

    async def close(self) -> None:
        """Drop the connection; every pending wait raises `BackendError`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        error = BackendError(f"the result backend for {self._where} was closed")
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(error)
        for confirm in self._subscribed.values():
            if not confirm.done():
                confirm.set_exception(error)
        tasks = [task for task in (self._reader, *self._background) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.disconnect()
            self._connection = None
