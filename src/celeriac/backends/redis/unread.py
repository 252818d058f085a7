"""Bounded bookkeeping of the results a client subscribed to at send time and has not read yet.

Two kinds of entries, keyed by channel, each kind capped at ``limit`` entries, the oldest dropped first:

* *pending*: subscribed when the task was sent; nobody waits on it yet and no ready record came.
* *received*: the ready record came before anyone asked for it; kept for the ``get()`` that follows.

Everything happens on the listener's loop, but for `Unread.take` with a ``wait``: a sync ``get()`` in another
thread is handed its record by the listener directly, without two hops onto the portal loop and back (measured:
p50 of a ``delay().get()`` round trip 1.01-1.21 ms without it, 0.82-0.93 ms with it, same hour, bench/README.md).

Dropping an entry never loses a result: the record is still in the store, and a later wait subscribes and
reads it the ordinary way. So results nobody ever reads cost at most ``limit`` subscriptions and ``limit``
records, and no ``AsyncResult`` has to be forgotten or garbage-collected for that.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict

from celeriac.backends.base import TaskMeta


class Unread:
    """The pending subscriptions and received records of results not read yet (see the module docstring).

    Args:
        limit: the most entries of each kind; 0 keeps none.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self._pending: OrderedDict[str, asyncio.Future[None]] = OrderedDict()  # channel -> its confirmation
        self._received: OrderedDict[str, TaskMeta] = OrderedDict()
        # For threads blocked in take(wait=): the lock guards _received; the loop notifies only when one waits.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._waiting = 0
        self._loop_thread: int | None = None

    # -- pending subscriptions -----------------------------------------------------------------------------
    def add_pending(self, channel: str, confirm: asyncio.Future[None]) -> list[str]:
        """Remember a subscription made at send time; return the channels dropped to stay within the limit."""
        self._loop_thread = threading.get_ident()
        self._pending[channel] = confirm
        dropped = []
        while len(self._pending) > self.limit:
            dropped.append(self._pending.popitem(last=False)[0])
        if dropped:
            self._wake()
        return dropped

    def pending_confirm(self, channel: str) -> asyncio.Future[None] | None:
        """The confirmation of ``channel``'s pending subscription, if it has one."""
        return self._pending.get(channel)

    def take_pending(self, channel: str) -> asyncio.Future[None] | None:
        """Forget ``channel``'s pending subscription (a waiter took it over, or it ended); its confirmation."""
        confirm = self._pending.pop(channel, None)
        if confirm is not None:
            self._wake()
        return confirm

    def is_pending(self, channel: str) -> bool:
        """Whether ``channel`` was subscribed at send time and still has no waiter and no record."""
        return channel in self._pending

    def pending_channels(self) -> list[str]:
        """Every pending channel, oldest first."""
        return list(self._pending)

    # -- received records ----------------------------------------------------------------------------------
    def keep(self, channel: str, meta: TaskMeta) -> None:
        """Keep a ready record nobody asked for yet (dropping the oldest beyond the limit)."""
        with self._lock:
            self._received[channel] = meta
            self._received.move_to_end(channel)
            while len(self._received) > self.limit:
                self._received.popitem(last=False)
            if self._waiting:
                self._changed.notify_all()

    def take(self, channel: str, wait: float = 0.0) -> TaskMeta | None:
        """Hand over (and forget) the received record of ``channel``, if any. Safe from any thread.

        With ``wait`` > 0, a thread other than the listener's waits up to ``wait`` seconds while ``channel`` is
        still pending (subscribed at send, not dropped, no other waiter) and is handed the record the moment it
        is kept. None when it did not come (or is not expected): the caller then waits the ordinary way.
        """
        with self._lock:
            meta = self._received.pop(channel, None)
            if meta is not None or wait <= 0 or threading.get_ident() == self._loop_thread:
                return meta
            deadline = time.monotonic() + wait
            self._waiting += 1
            try:
                while channel in self._pending:  # a dict lookup from this thread is atomic
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
                    meta = self._received.pop(channel, None)
                    if meta is not None:
                        return meta
            finally:
                self._waiting -= 1
            return self._received.pop(channel, None)

    def _wake(self) -> None:
        """Let threads blocked in `take` look again (a pending entry went); nothing to do when none waits."""
        if self._waiting:
            with self._lock:
                self._changed.notify_all()

    def peek(self, channel: str) -> TaskMeta | None:
        """The received record of ``channel``, if any, kept for the wait that follows."""
        with self._lock:
            return self._received.get(channel)

    def discard(self, channel: str) -> None:
        """Forget the received record of ``channel`` (a new run of the task, or the result was deleted)."""
        with self._lock:
            self._received.pop(channel, None)

    # -- all -----------------------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """(pending subscriptions, received records)."""
        return len(self._pending), len(self._received)

    def clear(self) -> None:
        """Forget everything."""
        self._pending.clear()
        with self._lock:
            self._received.clear()
        self._wake()
