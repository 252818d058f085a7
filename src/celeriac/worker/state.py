"""WorkerState: what one worker holds right now (active, reserved, revoked ids, counters); an object, no globals."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from celeriac.protocol.clock import LamportClock

if TYPE_CHECKING:
    from celeriac.worker.request import Request


class RevokedSet:
    """Revoked task ids: bounded (oldest dropped first) and expiring, as Celery's LimitedSet."""

    def __init__(self, maxlen: int = 50_000, expires: float = 10_800.0) -> None:
        self.maxlen = maxlen
        self.expires = expires
        self._ids: OrderedDict[str, float] = OrderedDict()

    def add(self, task_id: str, at: float | None = None) -> None:
        """Remember ``task_id`` as revoked (refreshes its time when already present)."""
        self._ids.pop(task_id, None)
        self._ids[task_id] = time.time() if at is None else at
        self.purge()

    def __contains__(self, task_id: object) -> bool:
        stamp = self._ids.get(task_id) if isinstance(task_id, str) else None
        return stamp is not None and (not self.expires or time.time() - stamp < self.expires)

    def purge(self) -> None:
        """Drop expired ids and the oldest ones beyond ``maxlen``."""
        cutoff = time.time() - self.expires if self.expires else None
        while self._ids:
            oldest_id, stamp = next(iter(self._ids.items()))
            if len(self._ids) > self.maxlen or (cutoff is not None and stamp < cutoff):
                del self._ids[oldest_id]
            else:
                break

    def items(self) -> list[tuple[str, float]]:
        """``(id, time revoked)`` pairs, oldest first."""
        return list(self._ids.items())

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(frozen=True, slots=True)
class StateStatistics:
    """Counters for ``inspect stats`` and the dashboard."""

    active: int
    reserved: int
    scheduled: int
    revoked: int
    processed: int
    total: dict[str, int]


class WorkerState:
    """The requests a worker holds and what it has done, keyed by task id."""

    def __init__(self) -> None:
        self.active: dict[str, Request] = {}
        self.reserved: dict[str, Request] = {}
        self.scheduled: dict[str, Request] = {}
        self.revoked = RevokedSet()
        self.total: Counter[str] = Counter()
        self.clock = LamportClock()
        self.processed = 0

    def statistics(self) -> StateStatistics:
        """A snapshot of the counters."""
        return StateStatistics(
            active=len(self.active),
            reserved=len(self.reserved),
            scheduled=len(self.scheduled),
            revoked=len(self.revoked),
            processed=self.processed,
            total=dict(self.total),
        )
