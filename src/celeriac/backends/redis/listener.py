"""Waiting for results through the one pub/sub connection of a Redis result backend.

``wait(channel)`` subscribes (the first waiter of a channel sends SUBSCRIBE; later ones share it), waits for
Redis to confirm, reads the current record, and then waits for a PUBLISH of a ready state. When the last
waiter of a channel leaves, the channel is released (`link`: unsubscribed soon, in a batch). A record that came
through a subscription made at send time (`ahead`) is returned at once, with no command; a waiter that comes
while such a subscription is pending takes it over.

Reconnecting is the link's; once it re-subscribed every channel waited on or pending, the listener re-reads
those keys (MGET) and delivers what is ready, so a result published while the link was down is not missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio.connection import AbstractConnection

from celeriac.backends.base import READY_STATES, TaskMeta
from celeriac.backends.redis.ahead import SubscriptionsAhead
from celeriac.backends.redis.checks import ReadReady
from celeriac.backends.redis.link import PubSubLink
from celeriac.errors import BackendError, CeleriacError

log = logging.getLogger("celeriac.backends.redis")

Decode = Callable[[bytes], TaskMeta]

DEFAULT_UNREAD_LIMIT = 1000


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
        unread_limit: the bound of the send-time subscriptions (`SubscriptionsAhead`); 0 turns them off.

    Attributes:
        ahead: the send-time subscriptions (``expect``) and the records they received.
    """

    def __init__(
        self,
        new_connection: Callable[[], AbstractConnection],
        decode: Decode,
        read_ready: ReadReady,
        where: str,
        unread_limit: int = DEFAULT_UNREAD_LIMIT,
    ) -> None:
        self._decode = decode
        self._read_ready = read_ready
        self._where = where
        self._waiters: dict[str, set[asyncio.Future[TaskMeta]]] = {}
        self._link = PubSubLink(new_connection, where, self._on_message, self._wanted, self._caught_up)
        self.ahead = SubscriptionsAhead(self._link, read_ready, self.deliver, self._fail_waiters, unread_limit)

    async def wait(self, channel: str, read_current: Callable[[], Awaitable[TaskMeta]]) -> TaskMeta:
        """The first ready record seen on ``channel``, or ``read_current()`` once subscribed if it is ready.

        A record already received through a send-time subscription is returned at once, with no Redis command.
        """
        self._link.check_open()
        meta = self.ahead.take(channel)
        if meta is not None:
            return meta
        future: asyncio.Future[TaskMeta] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(channel, set())
        waiters.add(future)
        subscribed_at_send = self.ahead.claim(channel)
        confirm = self._link.confirmation(channel)
        if confirm is None:
            # Registered before any await, so a waiter arriving meanwhile waits for this same confirmation.
            confirm = self._link.reserve(channel)
            self._link.spawn(self._link.subscribe(channel, confirm))
        try:
            if not confirm.done():
                await asyncio.shield(confirm)
            confirm.result()  # the subscription's error, if it failed
            if subscribed_at_send is not confirm:
                # Subscribed just now: read the record once, in case it was stored before the subscription.
                # (A send-time subscription has that read done for it in the background: `checks`.)
                meta = await read_current()
                if meta.get("status") in READY_STATES:
                    return meta
            return await future
        finally:
            waiters.discard(future)
            if not waiters and self._waiters.get(channel) is waiters:
                del self._waiters[channel]
                self._link.release(channel)

    def deliver(self, channel: str, meta: TaskMeta) -> None:
        """Hand a ready record to the waiters of ``channel``, or keep it if the channel was subscribed at send."""
        waiters = self._waiters.get(channel)
        if waiters:
            for future in list(waiters):
                if not future.done():
                    future.set_result(meta)
        else:
            self.ahead.offer(channel, meta)

    def _fail_waiters(self, channel: str, exc: CeleriacError) -> bool:
        """Fail every waiter of ``channel`` with ``exc``; whether there were any."""
        waiters = self._waiters.get(channel)
        if not waiters:
            return False
        for future in list(waiters):
            if not future.done():
                future.set_exception(exc)
        return True

    def _on_message(self, channel: str, payload: Any) -> None:
        if channel not in self._waiters and not self.ahead.is_pending(channel):
            return
        try:
            meta = self._decode(payload)  # the full record: Celery's and celeriac's workers publish it
        except CeleriacError as exc:
            log.warning("unreadable result published on %r: %s", channel, exc)
            return
        if meta.get("status") in READY_STATES:
            self.deliver(channel, meta)

    def _wanted(self) -> list[str]:
        """Every channel that must stay subscribed: waited on, or pending since its send."""
        return list(dict.fromkeys([*self._waiters, *self.ahead.pending_channels()]))

    async def _caught_up(self, channels: list[str]) -> None:
        """Re-subscribed after a reconnect: read the keys still waited on or pending once."""
        waited = [channel for channel in channels if channel in self._waiters or self.ahead.is_pending(channel)]
        if not waited:
            return
        try:
            ready = await self._read_ready(waited)
        except CeleriacError as exc:
            log.warning("could not re-read results after reconnecting: %s", exc)
            return
        for channel, meta in ready.items():
            self.deliver(channel, meta)

    def statistics(self) -> ListenerStatistics:
        """Counts of subscribed, waited, pending and received channels."""
        pending, received = self.ahead.counts()
        return ListenerStatistics(self._link.subscribed, len(self._waiters), pending, received)

    async def close(self) -> None:
        """Drop the connection; every pending wait raises `BackendError`. Idempotent."""
        if self._link.closed:
            return
        error = BackendError(f"the result backend for {self._where} was closed")
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(error)
        self.ahead.close()
        await self._link.close(error)
