"""Bounded bookkeeping of the results a client subscribed to at send time and has not read yet.

Two kinds of entries, keyed by channel, each kind capped at ``limit`` entries, the oldest dropped first:

* *pending*: subscribed when the task was sent; nobody waits on it yet and no ready record came.
* *received*: the ready record came before anyone asked for it; kept for the ``get()`` that follows.

Everything happens on the listener's loop (a sync ``get()`` runs ``aget()`` there through the portal).

Dropping an entry never loses a result: the record is still in the store, and a later wait subscribes and
reads it the ordinary way. So results nobody ever reads cost at most ``limit`` subscriptions and ``limit``
records, and no ``AsyncResult`` has to be forgotten or garbage-collected for that.
"""

from __future__ import annotations

import asyncio
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

    # -- pending subscriptions -----------------------------------------------------------------------------
    def add_pending(self, channel: str, confirm: asyncio.Future[None]) -> list[str]:
        """Remember a subscription made at send time; return the channels dropped to stay within the limit."""
        self._pending[channel] = confirm
        dropped = []
        while len(self._pending) > self.limit:
            dropped.append(self._pending.popitem(last=False)[0])
        return dropped

    def pending_confirm(self, channel: str) -> asyncio.Future[None] | None:
        """The confirmation of ``channel``'s pending subscription, if it has one."""
        return self._pending.get(channel)

    def take_pending(self, channel: str) -> asyncio.Future[None] | None:
        """Forget ``channel``'s pending subscription (a waiter took it over, or it ended); its confirmation."""
        return self._pending.pop(channel, None)

    def is_pending(self, channel: str) -> bool:
        """Whether ``channel`` was subscribed at send time and still has no waiter and no record."""
        return channel in self._pending

    def pending_channels(self) -> list[str]:
        """Every pending channel, oldest first."""
        return list(self._pending)

    # -- received records ----------------------------------------------------------------------------------
    def keep(self, channel: str, meta: TaskMeta) -> None:
        """Keep a ready record nobody asked for yet (dropping the oldest beyond the limit)."""
        self._received[channel] = meta
        self._received.move_to_end(channel)
        while len(self._received) > self.limit:
            self._received.popitem(last=False)

    def take(self, channel: str) -> TaskMeta | None:
        """Hand over (and forget) the received record of ``channel``, if any."""
        return self._received.pop(channel, None)

    def peek(self, channel: str) -> TaskMeta | None:
        """The received record of ``channel``, if any, kept for the wait that follows."""
        return self._received.get(channel)

    def discard(self, channel: str) -> None:
        """Forget the received record of ``channel`` (a new run of the task, or the result was deleted)."""
        self._received.pop(channel, None)

    # -- all -----------------------------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """(pending subscriptions, received records)."""
        return len(self._pending), len(self._received)

    def clear(self) -> None:
        """Forget everything."""
        self._pending.clear()
        self._received.clear()
