"""Subscribing to a result's channel when its task is sent ("subscribes ahead", Celery's ``on_task_call``).

``expect(channel)`` subscribes *before* the task is sent, as Celery's client does (celery-wire.md §6.5): it
writes SUBSCRIBE and returns without waiting for Redis's answer (the worker cannot publish the result before it
got the message, which is sent after). The ready record published there is decoded from the message itself and
kept (`unread.Unread`, bounded) for the ``wait`` that follows, which then returns without any Redis command.
Safety net (`checks`): once Redis confirmed such a subscription, if no ready record came within a short delay,
the key is read once, so a record stored before the subscription took effect is not missed.

A waiter that comes for a pending channel takes its subscription over (`claim`); a record that comes with
nobody waiting is kept (`offer`) and the channel released.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from celeriac.backends.base import TaskMeta
from celeriac.backends.redis.checks import DelayedChecks, ReadReady
from celeriac.backends.redis.link import PubSubLink
from celeriac.backends.redis.unread import Unread
from celeriac.errors import CeleriacError


class SubscriptionsAhead:
    """The send-time subscriptions of one result listener and the records they received.

    Args:
        link: the listener's pub/sub connection.
        read_ready: reads the ready records among some keys (the safety net).
        deliver: hands a ready record to the channel's waiters, or to `offer` when there are none.
        fail_waiters: fails the waiters of a channel with an error; False when there are none.
        limit: the most pending subscriptions, and the most unread records, kept at a time (each; the oldest
            are dropped first); 0 turns `expect` off.
    """

    def __init__(
        self,
        link: PubSubLink,
        read_ready: ReadReady,
        deliver: Callable[[str, TaskMeta], None],
        fail_waiters: Callable[[str, CeleriacError], bool],
        limit: int,
    ) -> None:
        self._link = link
        self._fail_waiters = fail_waiters
        self._unread = Unread(limit)
        self._checks = DelayedChecks(read_ready, link.is_current, deliver, self._check_failed, link.spawn)
        self._closed = False

    async def expect(self, channel: str) -> None:
        """Subscribe to ``channel`` before the task whose result it carries is sent; see the module docstring.

        Returns once SUBSCRIBE is written, without waiting for Redis's answer (only the first call of a
        listener waits for the connection to open); while the link is being re-opened it only queues the
        subscription, so a send is never held up by a reconnect. A failed subscription is not raised: the
        ``wait`` that follows subscribes again the usual way. Raises `BackendError` once closed.
        """
        self._link.check_open()
        if self._unread.limit == 0:
            return
        self._unread.discard(channel)  # the task is sent (again): a record received before is not this run's
        if self._link.confirmation(channel) is not None:
            return  # somebody waits on it already, or an earlier send subscribed it
        confirm = self._link.reserve(channel)
        for dropped in self._unread.add_pending(channel, confirm):
            self._link.release(dropped)  # beyond the limit: the oldest falls back to subscribing when waited on
        confirm.add_done_callback(functools.partial(self._confirmed, channel))
        if self._link.busy:
            self._link.spawn(self._link.subscribe(channel, confirm))
            return
        try:
            await self._link.subscribe(channel, confirm)  # no suspension unless the connection must be opened
        except BaseException:
            confirm.cancel()  # cancelled while connecting: the callback forgets the subscription
            raise

    def _confirmed(self, channel: str, confirm: asyncio.Future[None]) -> None:
        """A send-time subscription was answered: queue its safety-net read, or forget it when it failed."""
        failed = confirm.cancelled() or confirm.exception() is not None  # (marks an error as retrieved)
        if self._closed:
            return
        if failed:
            # Waiters that took it over see the error through the confirmation and subscribe no more.
            if self._unread.pending_confirm(channel) is confirm:
                self._unread.take_pending(channel)
                if self._link.is_current(channel, confirm):
                    self._link.release(channel)  # the SUBSCRIBE may have gone out before the failure
            return
        if self._link.is_current(channel, confirm):  # still this subscription, and no record came yet
            self._checks.confirmed(channel, confirm)

    def _check_failed(self, channel: str, exc: CeleriacError) -> None:
        # As when the read after subscribing fails in ``wait``: its waiters get the error. Without waiters the
        # subscription is dropped, so a later wait subscribes and reads again.
        if not self._fail_waiters(channel, exc) and self._unread.take_pending(channel) is not None:
            self._link.release(channel)

    # -- for the listener --------------------------------------------------------------------------------------
    def is_pending(self, channel: str) -> bool:
        """Whether ``channel`` was subscribed at send time and still has no waiter and no record."""
        return self._unread.is_pending(channel)

    def pending_channels(self) -> list[str]:
        return self._unread.pending_channels()

    def claim(self, channel: str) -> asyncio.Future[None] | None:
        """A waiter takes ``channel``'s send-time subscription over: its confirmation (None if there is none)."""
        return self._unread.take_pending(channel)

    def take(self, channel: str) -> TaskMeta | None:
        """Hand over the ready record received for ``channel`` and not read yet, if any."""
        return self._unread.take(channel)

    def offer(self, channel: str, meta: TaskMeta) -> None:
        """A ready record came on ``channel`` with nobody waiting: keep it if ``channel`` is pending."""
        if self._unread.is_pending(channel):
            self._unread.keep(channel, meta)
            self._unread.take_pending(channel)
            self._link.release(channel)

    # -- for the backend ---------------------------------------------------------------------------------------
    def take_received(self, channel: str, wait: float) -> TaskMeta | None:
        """From a thread other than the loop's: the record received for ``channel``, waiting up to ``wait`` s
        while it is expected (`unread.Unread.take`)."""
        return self._unread.take(channel, wait)

    def received(self, channel: str) -> TaskMeta | None:
        """The ready record received for ``channel`` and not read yet, if any (it stays for the next wait)."""
        return self._unread.peek(channel)

    def discard(self, channel: str) -> None:
        """Forget what was received for ``channel`` (its record was deleted)."""
        self._unread.discard(channel)

    def counts(self) -> tuple[int, int]:
        """(pending subscriptions, received records)."""
        return self._unread.counts()

    def close(self) -> None:
        """Forget everything; no safety-net read happens after this."""
        self._closed = True
        self._unread.clear()
        self._checks.close()
