"""Waking waiters when the database may have changed: when another process pokes this one after a commit
(`celeriac._sqlite.wake`), and ``PRAGMA data_version`` polled with a backoff underneath."""

from __future__ import annotations

import asyncio
import contextlib

from celeriac._sqlite.connection import read_data_version
from celeriac._sqlite.thread import SQLiteThread
from celeriac._sqlite.wake import Wake
from celeriac.errors import CeleriacError

MIN_POLL = 0.001  # first pause of an idle poll
# Each idle poll waits 25% longer than the last, up to the polling interval: reaching 50 ms takes ~200 ms of
# quiet (~17 polls), so intermittent traffic keeps ~1-6 ms latency (doubling gave 14 ms after a 20 ms gap).
POLL_GROWTH = 1.25
IDLE_RECHECK = 1.0  # an idle waiter looks again at least this often, even if nothing announced a change


class ChangeWatcher:
    """Wakes waiters when the database may have changed.

    Another connection's commit shows as a new ``PRAGMA data_version``; it is polled only while someone waits,
    every 1 ms at first, each pause 25% longer while nothing changes, up to ``max_interval``. A commit on this
    very connection does not change the version, so local writers call `notify`, which sets every listening
    event (listening is permanent, so a notify that comes while the listener is busy reading is not lost).
    """

    def __init__(self, thread: SQLiteThread, max_interval: float) -> None:
        self._thread = thread
        self._max_interval = max(max_interval, MIN_POLL)
        self._listeners: set[asyncio.Event] = set()
        self._waiters: dict[asyncio.Event, int] = {}
        self._poller: asyncio.Task[None] | None = None
        self._poked = asyncio.Event()
        self._wake = Wake(thread.path, self._on_poke)

    def listen(self, event: asyncio.Event) -> None:
        """Have `notify` set ``event`` from now on."""
        self._listeners.add(event)

    def unlisten(self, event: asyncio.Event) -> None:
        self._listeners.discard(event)

    def notify(self) -> None:
        """Wake every listener, and poke the other processes: this connection just committed something they
        may want."""
        for event in self._listeners:
            event.set()
        self._wake.poke_others()

    async def wait(self, event: asyncio.Event, baseline: int, timeout: float | None) -> None:
        """Wait until ``event`` is set (by `notify`, by a data_version other than ``baseline``, or by the
        caller's own wakers), or ``timeout`` seconds pass. ``baseline`` is the version read before the
        caller last looked at the data, so a change made since then wakes it at once."""
        if event.is_set():
            return
        self._waiters[event] = baseline
        if self._poller is None:
            self._wake.listen(asyncio.get_running_loop())
            self._poller = asyncio.create_task(self._poll())
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            pass
        finally:
            self._waiters.pop(event, None)

    async def close(self) -> None:
        """Stop polling and wake every listener and waiter."""
        for event in self._listeners:
            event.set()
        self._wake.close()
        for event in self._waiters:
            event.set()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    def _on_poke(self) -> None:
        """Another process committed: wake every waiter now, without a ``data_version`` read first (any commit
        changes it, so the read would wake them all anyway, ~0.1 ms later, on the thread their reads need)."""
        for event in self._waiters:
            event.set()
        self._poked.set()

    async def _poll(self) -> None:
        interval, last = MIN_POLL, None
        try:
            while self._waiters:
                version = await self._thread.run(read_data_version)
                for event, baseline in self._waiters.items():
                    if baseline != version:
                        event.set()
                interval = MIN_POLL if version != last else min(interval * POLL_GROWTH, self._max_interval)
                last = version
                self._poked.clear()  # a poke during the read above has woken the waiters already
                while True:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(interval):
                            await self._poked.wait()  # another process committed; its poke woke the waiters
                    if not self._poked.is_set():
                        break
                    # Read again MIN_POLL after the last poke: a waiter that registered after it, with an older
                    # baseline, is woken by that read (or by the next poke, if they keep coming).
                    self._poked.clear()
                    interval = MIN_POLL
        except CeleriacError:
            for event in self._waiters:  # their own next call meets the error and reports it
                event.set()
        finally:
            self._poller = None
