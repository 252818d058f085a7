"""One pub/sub connection shared by every result wait of a Redis backend.

``wait(channel)`` subscribes (the first waiter of a channel sends SUBSCRIBE; later ones share it), waits for
Redis to confirm, reads the current record, and then waits for a PUBLISH of a ready state. When the last
waiter of a channel leaves, the channel is unsubscribed.

``expect(channel)`` subscribes *before* the task is sent, as Celery's client does (celery-wire.md §6.5): it
writes SUBSCRIBE and returns without waiting for Redis's answer (the worker cannot publish the result before it
got the message, which is sent after). The ready record published there is decoded from the message itself and
kept (`unread.Unread`, bounded) for the ``wait`` that follows, which then returns without any Redis command.
Safety net (`redis_checks`): once Redis confirmed such a subscription, if no ready record came within a short
delay, the key is read once, so a record stored before the subscription took effect is not missed.

Channels nobody needs any more are unsubscribed in batches, `UNSUBSCRIBE_DELAY` after the first of them (for
the same reason: one command per batch instead of a task and a command per result, off the caller's path).
A message on such a channel meanwhile is ignored; a channel wanted again meanwhile is not unsubscribed.

Replies to SUBSCRIBE arrive in command order, so each channel keeps a FIFO of confirmation futures and each
``subscribe`` reply resolves the oldest: a waiter never mistakes the confirmation of an earlier, since
abandoned subscription for its own.

When the connection drops, the reader reconnects with a backoff while anyone waits (or a send-time
subscription is pending), re-subscribes every such channel, and once Redis confirmed, re-reads those keys
(MGET): a result published while the link was down is not missed (Celery's client does the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio.connection import AbstractConnection

from celeriac._redis.compat import raise_if_cancelled
from celeriac._redis.errors import redis_errors
from celeriac.backends.base import READY_STATES, TaskMeta
from celeriac.backends.redis.checks import DelayedChecks, ReadReady
from celeriac.backends.unread import Unread
from celeriac.errors import BackendError, CeleriacError

log = logging.getLogger("celeriac.backends.redis")

Decode = Callable[[bytes], TaskMeta]

DEFAULT_UNREAD_LIMIT = 1000
UNSUBSCRIBE_DELAY = 0.05  # seconds during which channels to unsubscribe are collected into one command


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class ListenerStatistics:
    """What the listener holds right now.

    Attributes:
        subscribed: channels subscribed (or being subscribed) on purpose: waited on, or pending.
        waiting: channels somebody waits on.
        pending: channels subscribed at send time that nobody waits on yet and no record came for.
        received: ready records received for those, kept until read.
    """

    subscribed: int
    waiting: int
    pending: int
    received: int


class ResultListener:
    """Routes result PUBLISHes to the coroutines waiting for them.

    Args:
        new_connection: makes an unconnected connection (no I/O).
        decode: reads a published record (raises a CeleriacError when it cannot).
        read_ready: reads the ready records among some keys, for the catch-up after a reconnect and the safety
            net of send-time subscriptions.
        where: the redacted URL, for messages.
        unread_limit: the most send-time subscriptions nobody waits on, and the most received records nobody
            read, kept at a time (each; the oldest are dropped first); 0 turns ``expect`` off.
    """

    def __init__(
        self,
        new_connection: Callable[[], AbstractConnection],
        decode: Decode,
        read_ready: ReadReady,
        where: str,
        unread_limit: int = DEFAULT_UNREAD_LIMIT,
    ) -> None:
        self._new_connection = new_connection
        self._decode = decode
        self._read_ready = read_ready
        self._where = where
        self._connection: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # held while connecting, sending, and reconnecting
        self._waiters: dict[str, set[asyncio.Future[TaskMeta]]] = {}
        # channel -> its current subscription's confirmation; a channel is here while waited on or pending.
        self._subscribed: dict[str, asyncio.Future[None]] = {}
        self._confirms: dict[str, deque[asyncio.Future[None]]] = {}  # channel -> confirms in command order
        self._unread = Unread(unread_limit)
        self._checks = DelayedChecks(
            read_ready,
            lambda channel, confirm: self._subscribed.get(channel) is confirm,
            self._deliver,
            self._check_failed,
            self._spawn,
        )
        self._to_unsubscribe: dict[str, None] = {}  # an ordered set
        self._unsubscribe_timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"the result backend for {self._where} is closed")

    # -- send time -----------------------------------------------------------------------------------------
    async def expect(self, channel: str) -> None:
        """Subscribe to ``channel`` before the task whose result it carries is sent; see the module docstring.

        Returns once SUBSCRIBE is written, without waiting for Redis's answer (only the first call of a
        listener waits for the connection to open); while the link is being re-opened it only queues the
        subscription, so a send is never held up by a reconnect. A failed subscription is not raised: the
        ``wait`` that follows subscribes again the usual way. Raises `BackendError` once closed.
        """
        self._check_open()
        if self._unread.limit == 0:
            return
        self._unread.discard(channel)  # the task is sent (again): a record received before is not this run's
        if channel in self._subscribed:
            return  # somebody waits on it already, or an earlier send subscribed it
        confirm: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._subscribed[channel] = confirm
        for dropped in self._unread.add_pending(channel, confirm):
            self._release(dropped)  # beyond the limit: the oldest falls back to subscribing when waited on
        confirm.add_done_callback(functools.partial(self._pending_confirmed, channel))
        if self._lock.locked():
            self._spawn(self._subscribe(channel, confirm))
            return
        try:
            await self._subscribe(channel, confirm)  # no suspension unless the connection must be opened
        except BaseException:
            confirm.cancel()  # cancelled while connecting: the callback forgets the subscription
            raise

    def _pending_confirmed(self, channel: str, confirm: asyncio.Future[None]) -> None:
        """A send-time subscription was answered: queue its safety-net read, or forget it when it failed."""
        failed = confirm.cancelled() or confirm.exception() is not None  # (marks an error as retrieved)
        if self._closed:
            return
        if failed:
            # Waiters that took it over see the error through the confirmation and subscribe no more.
            if self._unread.pending_confirm(channel) is confirm:
                self._unread.take_pending(channel)
                if self._subscribed.get(channel) is confirm:
                    self._release(channel)  # the SUBSCRIBE may have gone out before the failure
            return
        if self._subscribed.get(channel) is confirm:  # still this subscription, and no record came yet
            self._checks.confirmed(channel, confirm)

    def _check_failed(self, channel: str, exc: CeleriacError) -> None:
        # As when the read after subscribing fails in ``wait``: its waiters get the error. Without waiters the
        # subscription is dropped, so a later wait subscribes and reads again.
        waiters = self._waiters.get(channel)
        if waiters:
            for future in list(waiters):
                if not future.done():
                    future.set_exception(exc)
        elif self._unread.take_pending(channel) is not None:
            self._release(channel)

    # -- waiting -------------------------------------------------------------------------------------------
    async def wait(self, channel: str, read_current: Callable[[], Awaitable[TaskMeta]]) -> TaskMeta:
        """The first ready record seen on ``channel``, or ``read_current()`` once subscribed if it is ready.

        A record already received through a send-time subscription is returned at once, with no Redis command.
        """
        self._check_open()
        meta = self._unread.take(channel)
        if meta is not None:
            return meta
        loop = asyncio.get_running_loop()
        future: asyncio.Future[TaskMeta] = loop.create_future()
        waiters = self._waiters.setdefault(channel, set())
        waiters.add(future)
        subscribed_at_send = self._unread.take_pending(channel)
        confirm = self._subscribed.get(channel)
        if confirm is None:
            # Registered before any await, so a waiter arriving meanwhile waits for this same confirmation.
            confirm = self._subscribed[channel] = loop.create_future()
            self._spawn(self._subscribe(channel, confirm))
        try:
            if not confirm.done():
                await asyncio.shield(confirm)
            confirm.result()  # the subscription's error, if it failed
            if subscribed_at_send is not confirm:
                # Subscribed just now: read the record once, in case it was stored before the subscription.
                # (A send-time subscription has that read done for it in the background: `redis_checks`.)
                meta = await read_current()
                if meta.get("status") in READY_STATES:
                    return meta
            return await future
        finally:
            waiters.discard(future)
            if not waiters and self._waiters.get(channel) is waiters:
                del self._waiters[channel]
                self._release(channel)

    def received(self, channel: str) -> TaskMeta | None:
        """The ready record received for ``channel`` and not read yet, if any (it stays for the next `wait`)."""
        return self._unread.peek(channel)

    def discard(self, channel: str) -> None:
        """Forget what was received for ``channel`` (its record was deleted)."""
        self._unread.discard(channel)

    def take_received(self, channel: str, wait: float = 0.0) -> TaskMeta | None:
        """Hand over the ready record received for ``channel`` and not read yet, if any. Safe from any thread;
        another thread may wait up to ``wait`` s for a record still expected (`Unread.take`)."""
        return self._unread.take(channel, wait)

    def statistics(self) -> ListenerStatistics:
        """Counts of subscribed, waited, pending and received channels."""
        pending, received = self._unread.counts()
        return ListenerStatistics(len(self._subscribed), len(self._waiters), pending, received)

    # -- commands --------------------------------------------------------------------------------------------
    def _spawn(self, coroutine: Awaitable[None]) -> asyncio.Task[None]:
        # Sends run as tasks of their own: a waiter cancelled mid-send must not leave half a command behind.
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _release(self, channel: str) -> None:
        """Nobody needs ``channel`` any more: unsubscribe it soon (unless someone comes back for it first)."""
        self._subscribed.pop(channel, None)
        self._checks.forget(channel)
        if self._closed:
            return
        self._to_unsubscribe[channel] = None
        if self._unsubscribe_timer is None:
            self._unsubscribe_timer = asyncio.get_running_loop().call_later(UNSUBSCRIBE_DELAY, self._unsubscribe_due)

    def _unsubscribe_due(self) -> None:
        self._unsubscribe_timer = None
        channels = [channel for channel in self._to_unsubscribe if channel not in self._subscribed]
        self._to_unsubscribe.clear()
        if channels:
            self._spawn(self._unsubscribe(channels))

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

    async def _unsubscribe(self, channels: list[str]) -> None:
        async with self._lock:
            channels = [channel for channel in channels if channel not in self._subscribed]  # not wanted again
            if not channels or self._connection is None:
                return  # nothing to unsubscribe from
            with (
                contextlib.suppress(CeleriacError),
                redis_errors(self._where, lost=BackendError, other=BackendError),
            ):
                await self._connection.send_command("UNSUBSCRIBE", *channels)

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
            if channel not in self._waiters and not self._unread.is_pending(channel):
                return
            try:
                meta = self._decode(reply[2])  # the full record: Celery's and celeriac's workers publish it
            except CeleriacError as exc:
                log.warning("unreadable result published on %r: %s", channel, exc)
                return
            if meta.get("status") in READY_STATES:
                self._deliver(channel, meta)

    def _deliver(self, channel: str, meta: TaskMeta) -> None:
        """Hand a ready record to the waiters of ``channel``, or keep it if the channel was subscribed at send."""
        waiters = self._waiters.get(channel)
        if waiters:
            for future in list(waiters):
                if not future.done():
                    future.set_result(meta)
        elif self._unread.is_pending(channel):
            # Kept before the pending entry goes: a thread blocked in `take_received` finds the record when woken.
            self._unread.keep(channel, meta)
            self._unread.take_pending(channel)
            self._release(channel)

    def _wanted(self) -> list[str]:
        """Every channel that must stay subscribed: waited on, or pending since its send."""
        return list(dict.fromkeys([*self._waiters, *self._unread.pending_channels()]))

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
            while not self._closed and self._wanted():
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
        waited = [channel for channel in channels if channel in self._waiters or self._unread.is_pending(channel)]
        if not waited:
            return
        try:
            ready = await self._read_ready(waited)
        except CeleriacError as exc:
            log.warning("could not re-read results after reconnecting: %s", exc)
            return
        for channel, meta in ready.items():
            self._deliver(channel, meta)

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
        self._unread.clear()
        self._checks.close()
        self._to_unsubscribe.clear()
        if self._unsubscribe_timer is not None:
            self._unsubscribe_timer.cancel()
        tasks = [task for task in (self._reader, *self._background) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.disconnect()
            self._connection = None
