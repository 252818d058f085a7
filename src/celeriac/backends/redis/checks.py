"""The safety net of send-time result subscriptions: a delayed, batched read of keys that got no record.

A subscription made when the task is sent (`ahead.SubscriptionsAhead.expect`) can miss a record that was
stored before it took effect (say, a re-sent task id whose SUCCESS is kept). So once Redis confirmed such a
subscription, if no ready record came within `CHECK_DELAY`, its key is read once (one MGET per batch). Not at
once: measured on a 2-core VM, that read ran on the loop just while the publish's reply and the caller's
wake-up were due, and cost ~0.2 ms of each short round trip; a task that finishes within the delay (the common
case) needs no read at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from celeriac.backends.base import TaskMeta
from celeriac.errors import CeleriacError

log = logging.getLogger("celeriac.backends.redis")

CHECK_DELAY = 0.02  # seconds after its confirmation before a send-time subscription's key is read

ReadReady = Callable[[list[str]], Awaitable[dict[str, TaskMeta]]]


class DelayedChecks:
    """Reads the keys of confirmed send-time subscriptions `CHECK_DELAY` after their confirmation.

    Args:
        read_ready: reads the ready records among some keys.
        current: whether ``confirm`` is still the subscription of ``channel`` (no record came, nobody left).
        deliver: hands a ready record to the channel's waiters, or keeps it.
        failed: the read failed for ``channel``.
        spawn: runs a coroutine as a background task of the listener's.
    """

    def __init__(
        self,
        read_ready: ReadReady,
        current: Callable[[str, asyncio.Future[None]], bool],
        deliver: Callable[[str, TaskMeta], None],
        failed: Callable[[str, CeleriacError], None],
        spawn: Callable[[Awaitable[None]], object],
    ) -> None:
        self._read_ready = read_ready
        self._current = current
        self._deliver = deliver
        self._failed = failed
        self._spawn = spawn
        # Confirmed subscriptions still without a record: channel -> (confirmation, loop time), oldest first.
        self._due: dict[str, tuple[asyncio.Future[None], float]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def confirmed(self, channel: str, confirm: asyncio.Future[None]) -> None:
        """Redis confirmed the send-time subscription ``confirm`` of ``channel``: read its key later."""
        loop = asyncio.get_running_loop()
        # Re-inserted at the end, so `_due` stays in confirmation order (an entry of a released channel is
        # skipped when due: ``current`` says its confirmation is no longer the channel's).
        self._due.pop(channel, None)
        self._due[channel] = (confirm, loop.time())
        if self._timer is None:
            self._timer = loop.call_later(CHECK_DELAY, self._run_due)

    def close(self) -> None:
        """Stop: no read happens after this."""
        self._due.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _run_due(self) -> None:
        """Timer: read the keys of the subscriptions confirmed `CHECK_DELAY` ago that still got no record."""
        self._timer = None
        loop = asyncio.get_running_loop()
        due_before = loop.time() - CHECK_DELAY
        batch: list[str] = []
        for channel, (confirm, confirmed_at) in list(self._due.items()):
            if confirmed_at > due_before:
                # The rest were confirmed later (insertion order): look again when the oldest of them is due,
                # but not sooner than half a delay from now, so that steady sends are read in batches.
                when = max(confirmed_at + CHECK_DELAY, loop.time() + CHECK_DELAY / 2)
                self._timer = loop.call_at(when, self._run_due)
                break
            del self._due[channel]
            if self._current(channel, confirm):
                batch.append(channel)
        if batch:
            self._spawn(self._check(batch))

    async def _check(self, channels: list[str]) -> None:
        """Read the keys of ``channels``; hand out what is ready."""
        try:
            ready = await self._read_ready(channels)
        except CeleriacError as exc:
            log.debug("could not read results after subscribing: %s", exc)
            for channel in channels:
                self._failed(channel, exc)
            return
        for channel, meta in ready.items():
            self._deliver(channel, meta)
