"""The one pub/sub connection of a Redis result backend: SUBSCRIBE with confirmations, batched UNSUBSCRIBE,
the reader, and reconnecting.

A channel is *subscribed on purpose* from `reserve` until `release`; its entry is the confirmation future of
its current subscription, which `subscribe` sends. Replies to SUBSCRIBE arrive in command order, so each
channel keeps a FIFO of confirmation futures and each ``subscribe`` reply resolves the oldest: a waiter never
mistakes the confirmation of an earlier, since abandoned subscription for its own.

Channels nobody needs any more are unsubscribed in batches, `UNSUBSCRIBE_DELAY` after the first of them (one
command per batch instead of a task and a command per result, off the caller's path). A message on such a
channel meanwhile is ignored by the owner; a channel wanted again meanwhile is not unsubscribed.

When the connection drops, the reader reconnects with a backoff while the owner wants any channel, re-subscribes
all of them, and once Redis confirmed, hands them to the owner's ``caught_up`` (which re-reads those keys, so a
result published while the link was down is not missed; Celery's client does the same). A connection that stops
answering (`celeriac._redis.heartbeat`: a PING unanswered for ``pubsub_ping_interval``) is dropped and replaced
the same way, so a ``get()`` waiting on it still gets its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.connection import AbstractConnection

from celeriac._redis.compat import raise_if_cancelled
from celeriac._redis.errors import redis_errors
from celeriac._redis.heartbeat import Heartbeat, interval_of
from celeriac.errors import BackendError, CeleriacError

log = logging.getLogger("celeriac.backends.redis")

UNSUBSCRIBE_DELAY = 0.05  # seconds during which channels to unsubscribe are collected into one command


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


class PubSubLink:
    """Subscriptions on one pub/sub connection, kept across reconnects (see the module docstring).

    Args:
        new_connection: makes an unconnected connection (no I/O).
        where: the redacted URL, for messages.
        on_message: a PUBLISH arrived: (channel, payload).
        wanted: the channels to re-subscribe after a reconnect (none: stop reconnecting).
        caught_up: those channels are subscribed again on a new connection.
    """

    def __init__(
        self,
        new_connection: Callable[[], AbstractConnection],
        where: str,
        on_message: Callable[[str, Any], None],
        wanted: Callable[[], list[str]],
        caught_up: Callable[[list[str]], Awaitable[None]],
    ) -> None:
        self._new_connection = new_connection
        self._where = where
        self._on_message = on_message
        self._wanted = wanted
        self._caught_up = caught_up
        self._connection: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._heartbeat: Heartbeat | None = None
        self._lock = asyncio.Lock()  # held while connecting, sending, and reconnecting
        self._subscribed: dict[str, asyncio.Future[None]] = {}  # channel -> its current subscription's confirmation
        self._confirms: dict[str, deque[asyncio.Future[None]]] = {}  # channel -> confirms in command order
        self._to_unsubscribe: dict[str, None] = {}  # an ordered set
        self._unsubscribe_timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise BackendError(f"the result backend for {self._where} is closed")

    # -- subscriptions ---------------------------------------------------------------------------------------
    @property
    def subscribed(self) -> int:
        """How many channels are subscribed on purpose."""
        return len(self._subscribed)

    @property
    def busy(self) -> bool:
        """Whether a command would wait for the connection (being opened, or re-opened)."""
        return self._lock.locked()

    def confirmation(self, channel: str) -> asyncio.Future[None] | None:
        """The confirmation of ``channel``'s current subscription, if it is subscribed on purpose."""
        return self._subscribed.get(channel)

    def is_current(self, channel: str, confirm: asyncio.Future[None]) -> bool:
        """Whether ``confirm`` is still the confirmation of ``channel``'s current subscription."""
        return self._subscribed.get(channel) is confirm

    def reserve(self, channel: str) -> asyncio.Future[None]:
        """Make ``channel`` subscribed on purpose, under a new confirmation (`subscribe` sends it)."""
        confirm = self._subscribed[channel] = asyncio.get_running_loop().create_future()
        return confirm

    async def subscribe(self, channel: str, confirm: asyncio.Future[None]) -> None:
        """Send SUBSCRIBE for ``channel`` (opening the connection if needed); a failure goes to ``confirm``."""
        try:
            async with self._lock:
                connection = await self._ensure_connected()
                self._confirms.setdefault(channel, deque()).append(confirm)
                with redis_errors(self._where, lost=BackendError, other=BackendError):
                    await connection.send_command("SUBSCRIBE", channel, check_health=False)
        except Exception as exc:  # handed to every waiter of this subscription
            if not confirm.done():
                confirm.set_exception(exc if isinstance(exc, CeleriacError) else BackendError(str(exc)))
            if self._subscribed.get(channel) is confirm:
                del self._subscribed[channel]

    def release(self, channel: str) -> None:
        """Nobody needs ``channel`` any more: unsubscribe it soon (unless someone comes back for it first)."""
        self._subscribed.pop(channel, None)
        if self.closed:
            return
        self._to_unsubscribe[channel] = None
        if self._unsubscribe_timer is None:
            self._unsubscribe_timer = asyncio.get_running_loop().call_later(UNSUBSCRIBE_DELAY, self._unsubscribe_due)

    def spawn(self, coroutine: Awaitable[None]) -> asyncio.Task[None]:
        """Run ``coroutine`` as a background task of the link's (cancelled by `close`)."""
        # Sends run as tasks of their own: a waiter cancelled mid-send must not leave half a command behind.
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _unsubscribe_due(self) -> None:
        self._unsubscribe_timer = None
        channels = [channel for channel in self._to_unsubscribe if channel not in self._subscribed]
        self._to_unsubscribe.clear()
        if channels:
            self.spawn(self._unsubscribe(channels))

    async def _unsubscribe(self, channels: list[str]) -> None:
        async with self._lock:
            channels = [channel for channel in channels if channel not in self._subscribed]  # not wanted again
            if not channels or self._connection is None:
                return  # nothing to unsubscribe from
            with (
                contextlib.suppress(CeleriacError),
                redis_errors(self._where, lost=BackendError, other=BackendError),
            ):
                await self._connection.send_command("UNSUBSCRIBE", *channels, check_health=False)

    async def _ensure_connected(self) -> AbstractConnection:
        """The live connection, opening it (and starting the reader) if needed. Call with the lock held."""
        if self._connection is not None and self._reader is not None and not self._reader.done():
            return self._connection
        connection = self._new_connection()
        with redis_errors(self._where, lost=BackendError, other=BackendError):
            await connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        self._connection = connection
        self._start_heartbeat(connection)
        self._reader = asyncio.create_task(self._read(connection), name="celeriac-redis-results")
        return connection

    def _start_heartbeat(self, connection: AbstractConnection) -> None:
        self._heartbeat = Heartbeat(connection, interval_of(connection))
        self._heartbeat.start()

    # -- reading and reconnecting ----------------------------------------------------------------------------
    async def _read(self, connection: AbstractConnection) -> None:
        while True:
            raise_if_cancelled()
            try:
                with redis_errors(self._where, lost=BackendError, other=BackendError):
                    reply = await connection.read_response()
            except BackendError as exc:
                if self.closed:
                    return
                heartbeat, self._heartbeat = self._heartbeat, None
                if heartbeat is not None:
                    await heartbeat.stop()
                if heartbeat is not None and heartbeat.frozen:
                    log.warning(
                        "result pub/sub connection at %s did not answer a PING within %ss, replacing it",
                        self._where,
                        heartbeat.interval,
                    )
                else:
                    log.warning("result pub/sub connection lost, reconnecting: %s", exc)
                reconnected = await self._reconnect()
                if reconnected is None:
                    return
                connection = reconnected
                continue
            if self._heartbeat is not None:
                self._heartbeat.seen()
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
            self._on_message(channel, reply[2])

    async def _reconnect(self) -> AbstractConnection | None:
        """Open a new connection and re-subscribe, retrying while any channel is wanted; None when none is."""
        stale = [confirm for pending in self._confirms.values() for confirm in pending]
        self._confirms.clear()
        delay = 0.05
        async with self._lock:
            with contextlib.suppress(Exception):
                if self._connection is not None:
                    await self._connection.disconnect()
            self._connection = None
            while not self.closed and self._wanted():
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                channels = self._wanted()
                if not channels:
                    break
                connection = self._new_connection()
                confirms: list[asyncio.Future[None]] = []
                try:
                    with redis_errors(self._where, lost=BackendError, other=BackendError):
                        await connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                        for channel in channels:
                            confirm = asyncio.get_running_loop().create_future()
                            self._confirms.setdefault(channel, deque()).append(confirm)
                            confirms.append(confirm)
                        await connection.send_command("SUBSCRIBE", *channels, check_health=False)
                except BackendError as exc:
                    self._confirms.clear()
                    log.debug("result pub/sub reconnect failed: %s", exc)
                    continue
                self._connection = connection
                self._start_heartbeat(connection)
                self.spawn(self._catch_up(channels, confirms, stale))
                return connection
        for confirm in stale:
            confirm.cancel()
        return None

    async def _catch_up(
        self, channels: list[str], confirms: list[asyncio.Future[None]], stale: list[asyncio.Future[None]]
    ) -> None:
        """Once re-subscribed, release waiters stuck on the dead link and let the owner re-read its keys."""
        results = await asyncio.gather(*confirms, return_exceptions=True)
        if any(isinstance(result, BaseException) for result in results):
            return  # the new link broke too; the next reconnect catches up
        for confirm in stale:
            if not confirm.done():
                confirm.set_result(None)
        await self._caught_up(channels)

    async def close(self, error: CeleriacError) -> None:
        """Drop the connection; every pending confirmation fails with ``error``. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for confirm in self._subscribed.values():
            if not confirm.done():
                confirm.set_exception(error)
        self._to_unsubscribe.clear()
        if self._unsubscribe_timer is not None:
            self._unsubscribe_timer.cancel()
        if self._heartbeat is not None:
            await self._heartbeat.stop()
        tasks = [task for task in (self._reader, *self._background) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.disconnect()
            self._connection = None
