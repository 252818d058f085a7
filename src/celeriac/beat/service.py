"""`Beat`: wait for the lease, then fire due slots while holding it; give it up on stop.

Exactly once per slot, across any number of beat processes:

* one leader at a time: the result backend's lease (``beat_lease_seconds``) with a fencing token that changes
  whenever the lease changes hands; followers try to take it every half lease (at least every second), so a
  new leader fires within twice the lease after the old one stopped renewing, and at once after a clean stop;
* a slot is recorded as settled (`ResultBackend.record_fenced`, atomic with the token check) *before* its task is
  sent. A leader paused past its lease (SIGSTOP, a long GC, a frozen VM) finds its token dead when it wakes, records
  nothing and sends nothing; its successor had read the records and goes on from the latest settled slot.

The price of recording first: a leader killed between the record and the send (a few milliseconds, or while the
broker is unreachable for longer than the retries below) loses that one slot, logged where it can be. A slot is
never sent twice by beat.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
import os
import time
import uuid
from typing import TYPE_CHECKING

from celeriac import signals
from celeriac.beat.entries import Entry, parse_schedule
from celeriac.beat.records import LEASE, Progress, key, task_id
from celeriac.beat.slots import plan
from celeriac.errors import CeleriacError, ConfigurationError
from celeriac.events.dispatcher import EventDispatcher
from celeriac.schedules import zone

if TYPE_CHECKING:
    from celeriac.app.app import App
    from celeriac.backends.base import ResultBackend

log = logging.getLogger(__name__)

SEND_ATTEMPTS = 5
"""Tries to send a recorded slot's task before the slot is logged as lost (the broker is down)."""


FOLLOWER_LOOK = 1.0
"""Longest pause between a follower's tries to take the lease."""


class LostLease(Exception):
    """The lease expired or changed hands while this process led."""


class _Counter:
    """The Lamport clock of beat's own events (a plain counter: beat receives no events to merge)."""

    def __init__(self) -> None:
        self._next = itertools.count(1)

    def forward(self) -> int:
        return next(self._next)


class Beat:
    """The periodic-task service of ``app`` (``beat_schedule``); `run` until `stop`.

    Args:
        app: the app whose settings hold the schedule and whose broker and result backend it uses.
        holder: this process's name for the lease (default: the app's origin plus a random suffix).
    """

    def __init__(self, app: App, *, holder: str | None = None) -> None:
        conf = app.conf
        self.app = app
        self.entries: list[Entry] = parse_schedule(conf.beat_schedule)
        self.lease_seconds = float(conf.beat_lease_seconds)
        if not self.lease_seconds > 0:
            raise ConfigurationError(f"setting 'beat_lease_seconds' must be more than 0, not {self.lease_seconds}")
        self.max_interval = max(0.05, float(conf.beat_max_loop_interval))
        self.tz = zone(conf.timezone)
        self.holder = holder or f"{app.origin}/{uuid.uuid4().hex[:8]}"
        self.hostname = f"beat.{os.getpid()}@{app.origin.partition('@')[2] or 'localhost'}"
        self.token: int | None = None
        self.fired = 0
        self._stopping = asyncio.Event()
        self._progress: dict[str, Progress] = {}
        self._events: EventDispatcher | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        """Whether this process holds the lease (as far as it knows)."""
        return self.token is not None

    def stop(self) -> None:
        """Ask `run` to return (it releases the lease first, so a follower takes over at once)."""
        self._stopping.set()

    async def check(self) -> ResultBackend:
        """The result backend, once it is known to hold leases; `ConfigurationError` (one line) if it cannot."""
        return self.require_leases(await self.app.abackend())

    @staticmethod
    def require_leases(backend: ResultBackend) -> ResultBackend:
        """``backend`` if it can hold beat's lease, else the one-line `ConfigurationError` (no I/O: a class fact)."""
        if not backend.holds_leases:
            raise ConfigurationError(
                f"beat needs a result backend that can hold its lease (redis:// or sqlite://), not {backend.url}"
            )
        return backend

    async def run(self) -> None:
        """Follow or lead until `stop`; broker or backend outages are logged and waited out.

        Raises:
            ConfigurationError: the result backend cannot hold the lease (checked before anything else).
        """
        backend = await self.check()
        if signals.beat_init.has_receivers():
            await signals.beat_init.asend(sender=self)
        self._events = EventDispatcher(self.hostname, _Counter(), groups={"beat"})
        with contextlib.suppress(CeleriacError):
            self._events.attach(await self.app.atransport())
        log.info(
            "beat %s: %d entr%s, lease %gs",
            self.holder,
            len(self.entries),
            "y" if len(self.entries) == 1 else "ies",
            self.lease_seconds,
        )
        try:
            while not self._stopping.is_set():
                try:
                    token = await backend.acquire_lease(LEASE, self.holder, self.lease_seconds)
                except (CeleriacError, OSError) as exc:
                    log.warning("beat: cannot reach the result backend to take the lease: %s", exc)
                    token = None
                if token is None:
                    # Every half lease bounds a takeover after a crash; at least every second makes the
                    # handover after a leader's clean stop (it releases the lease) quick.
                    await self._pause(min(self.lease_seconds / 2, FOLLOWER_LOOK))
                    continue
                await self._lead(backend, token)
        finally:
            await self._step_down(backend)
            if self._events is not None:
                await self._events.detach(flush_timeout=1.0)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=max(0.0, seconds))

    async def _step_down(self, backend: ResultBackend) -> None:
        token, self.token = self.token, None
        if token is not None:
            with contextlib.suppress(CeleriacError, OSError):
                await backend.release_lease(LEASE, self.holder, token)
            log.info("beat %s: gave up the lease", self.holder)

    # -- leading -----------------------------------------------------------------------------------------
    async def _lead(self, backend: ResultBackend, token: int) -> None:
        self.token = token
        log.info("beat %s: leading (lease token %d)", self.holder, token)
        self._send_event("beat-leader", token=token)
        renew_at = time.monotonic() + self.lease_seconds / 3
        try:
            self._progress = {e.name: await self._anchor(backend, token, e) for e in self.entries}
            while not self._stopping.is_set():
                soonest = await self._fire_due(backend, token)
                wait = min((soonest - _now()).total_seconds(), renew_at - time.monotonic(), self.max_interval)
                await self._pause(wait)
                if time.monotonic() >= renew_at and not self._stopping.is_set():
                    if not await backend.renew_lease(LEASE, self.holder, token, self.lease_seconds):
                        raise LostLease
                    renew_at = time.monotonic() + self.lease_seconds / 3
        except LostLease:
            log.warning("beat %s: lost the lease (token %d); following again", self.holder, token)
            self.token = None
        except (CeleriacError, OSError) as exc:
            log.warning("beat %s: stepping down, the result backend failed: %s", self.holder, exc)
            await self._step_down(backend)
            await self._pause(self.lease_seconds / 2)

    async def _anchor(self, backend: ResultBackend, token: int, entry: Entry) -> Progress:
        """The entry's recorded progress; a new entry (or one whose rule changed) is anchored at now."""
        rule = entry.schedule.describe()
        found = Progress.decode(await backend.read_fenced(LEASE, key(entry.name)))
        if found is not None and found.rule == rule:
            return found
        anchored = Progress(_now(), rule)
        await self._record(backend, token, entry, anchored)
        return anchored

    async def _record(self, backend: ResultBackend, token: int, entry: Entry, progress: Progress) -> None:
        if not await backend.record_fenced(LEASE, token, key(entry.name), progress.encode()):
            raise LostLease
        self._progress[entry.name] = progress

    async def _fire_due(self, backend: ResultBackend, token: int) -> dt.datetime:
        """Settle every due slot; the time of the next one of any entry."""
        now = _now()
        soonest = now + dt.timedelta(seconds=self.max_interval)
        on_time = dt.timedelta(seconds=2 * self.lease_seconds + 1)
        for entry in self.entries:
            progress = self._progress[entry.name]
            todo = plan(entry.schedule, progress.done, now, entry.catch_up, tz=self.tz, on_time=on_time)
            if todo is not None:
                if todo.missed:
                    log.warning(
                        "beat: entry %r missed %d slot(s) (catch_up=%r)", entry.name, todo.missed, entry.catch_up
                    )
                if not todo.fire:
                    await self._record(backend, token, entry, Progress(todo.done, progress.rule))
                for slot in todo.fire:
                    await self._record(backend, token, entry, Progress(slot, progress.rule))
                    await self._send(entry, slot)
            soonest = min(soonest, entry.schedule.next_after(self._progress[entry.name].done, self.tz))
        return soonest

    async def _send(self, entry: Entry, slot: dt.datetime) -> None:
        ident = task_id(entry.name, slot)
        for attempt in range(1, SEND_ATTEMPTS + 1):
            try:
                await self.app.asend_task(entry.task, entry.args, entry.kwargs, task_id=ident, **entry.options)
            except (CeleriacError, OSError) as exc:
                if attempt == SEND_ATTEMPTS:
                    log.error(
                        "beat: slot %s of entry %r is lost: the broker refused it %d times: %s",
                        slot.isoformat(),
                        entry.name,
                        attempt,
                        exc,
                    )
                    return
                await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
                continue
            self.fired += 1
            log.info("beat: sent %s[%s] for entry %r (slot %s)", entry.task, ident, entry.name, slot.isoformat())
            self._send_event("beat-fired", entry=entry.name, task=entry.task, uuid=ident, slot=slot.timestamp())
            return

    def _send_event(self, event_type: str, **fields: object) -> None:
        if self._events is not None:
            self._events.send(event_type, holder=self.holder, **fields)

    # -- listing -----------------------------------------------------------------------------------------
    async def overview(self) -> list[tuple[Entry, dt.datetime | None, dt.datetime]]:
        """Each entry with its latest settled slot (None: never seen by a leader) and its next slot."""
        backend = await self.app.abackend()
        rows = []
        for entry in self.entries:
            found = Progress.decode(await backend.read_fenced(LEASE, key(entry.name)))
            done = found.done if found and found.rule == entry.schedule.describe() else None
            rows.append((entry, done, entry.schedule.next_after(done or _now(), self.tz)))
        return rows


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
