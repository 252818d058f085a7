"""Autoscaler step (``--autoscale MAX,MIN``): the pool's size follows the work between MIN and MAX slots.

Celery's rule, driven through `Pool.grow`/`Pool.shrink` so it works for every pool: ``qty`` is the number of
requests the worker holds (reserved or running). While ``qty`` exceeds the pool, it grows (at most to MAX) at
once; while the pool exceeds ``max(qty, MIN)``, it shrinks, but only after ``keepalive`` seconds (Celery's 30 s)
without a new task or a scale-up. The prefetch window stays ``MAX x multiplier`` so that waiting work can be
seen. A pool keeps at least one slot, so MIN 0 (Celery's default) behaves as 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from celeriac.control.replies import AutoscalerInfo
from celeriac.errors import ConfigurationError
from celeriac.worker.bootsteps import Step
from celeriac.worker.listeners import TaskListener
from celeriac.worker.steps import PoolStep

if TYPE_CHECKING:
    from celeriac.worker.request import Request
    from celeriac.worker.worker import Worker

log = logging.getLogger("celeriac.worker")

#: Seconds between two looks at the work when no task arrives (a received task wakes the scaler at once).
TICK = 1.0


def parse_autoscale(value: str, option: str) -> tuple[int, int]:
    """``"MAX,MIN"`` or ``"MAX"`` (MIN 0) as ``(max, min)``, either order (as Celery); errors name ``option``."""
    if ":" in value:  # Celery's worker_autoscaler names a class; celeriac has one autoscaler
        raise ConfigurationError(f"{option} takes MAX,MIN (e.g. 10,3), not a class path: {value!r}")
    parts = [part.strip() for part in value.split(",")]
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        raise ConfigurationError(f"{option} takes MAX,MIN as integers (e.g. 10,3), not {value!r}") from None
    if not 1 <= len(numbers) <= 2:
        raise ConfigurationError(f"{option} takes one or two integers (MAX,MIN), not {value!r}")
    if len(numbers) == 1:
        numbers.append(0)
    high, low = max(numbers), min(numbers)
    if low < 0 or high < 1:
        raise ConfigurationError(f"{option}: MAX must be at least 1 and MIN at least 0, not {value!r}")
    return high, low


def autoscale_bounds(value: str | tuple[int, int] | None, setting: str | None) -> tuple[int, int] | None:
    """The ``(max, min)`` a worker autoscales between: the ``autoscale`` argument, else ``worker_autoscaler``."""
    if value is None:
        return None if setting is None else parse_autoscale(setting, "worker_autoscaler")
    if isinstance(value, str):
        return parse_autoscale(value, "--autoscale")
    return parse_autoscale(",".join(str(n) for n in value), "autoscale")


class _Arrivals(TaskListener):
    """Wakes the scaler when a task is received, and remembers when that was."""

    def __init__(self, scaler: Autoscaler) -> None:
        self.scaler = scaler

    def task_received(self, request: Request) -> None:
        self.scaler.last_received = time.monotonic()
        self.scaler.wake.set()


class Autoscaler(Step["Worker"]):
    """Grows the pool when held requests wait for a slot; shrinks it after ``keepalive`` idle seconds."""

    requires = (PoolStep,)

    def __init__(self) -> None:
        self.max_concurrency = 1
        self.min_concurrency = 0
        self.keepalive = 30.0
        self.last_received: float | None = None
        self.last_scale_up: float | None = None
        self.wake = asyncio.Event()
        self._worker: Worker | None = None
        self._listener = _Arrivals(self)
        self._task: asyncio.Task[None] | None = None

    def include_if(self, worker: Worker) -> bool:
        return worker.autoscale is not None

    async def start(self, worker: Worker) -> None:
        assert worker.autoscale is not None
        self.max_concurrency, self.min_concurrency = worker.autoscale
        self.keepalive = worker.autoscale_keepalive
        self._worker = worker
        worker.listeners.append(self._listener)
        self._task = asyncio.create_task(self._run(), name="autoscaler")

    async def stop(self, worker: Worker) -> None:
        if self._listener in worker.listeners:
            worker.listeners.remove(self._listener)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), TICK)
            self.wake.clear()
            try:
                self.maybe_scale()
            except Exception:  # a scaling error must not end autoscaling for the worker's life
                log.exception("Autoscaler: could not resize the pool")

    @property
    def worker(self) -> Worker:
        """The worker whose pool this step scales."""
        if self._worker is None:
            raise RuntimeError("the autoscaler is not started")
        return self._worker

    @property
    def processes(self) -> int:
        """The pool's slots now."""
        return self.worker.pool.concurrency

    @property
    def qty(self) -> int:
        """Requests the worker holds that want a slot: reserved (not started) and running."""
        state = self.worker.state
        return len(state.reserved) + len(state.active)

    def maybe_scale(self) -> None:
        """One look at the work: grow to meet it (up to max), or shrink toward it (down to min) when idle."""
        procs, qty = self.processes, self.qty
        wanted = min(qty, self.max_concurrency)
        if wanted > procs:
            self.last_scale_up = time.monotonic()
            self._grow(wanted - procs)
            return
        floor = max(qty, self.min_concurrency, 1)
        if floor < procs and self._idle_long_enough():
            self._shrink(procs - floor)

    def _idle_long_enough(self) -> bool:
        stamps = [stamp for stamp in (self.last_scale_up, self.last_received) if stamp is not None]
        return bool(stamps) and time.monotonic() - max(stamps) > self.keepalive

    def update(self, max_concurrency: int | None, min_concurrency: int | None) -> tuple[int, int]:
        """The ``autoscale`` control command: new bounds, applied to the pool now; returns ``(max, min)``."""
        high = self.max_concurrency if max_concurrency is None else max_concurrency
        low = self.min_concurrency if min_concurrency is None else min_concurrency
        if high < 1:
            raise ValueError(f"autoscale max must be at least 1, not {high}")
        if low > high:
            raise ValueError(f"autoscale min {low} is above max {high}")
        self.max_concurrency, self.min_concurrency = high, low
        self.worker.set_autoscale(high, low)
        procs = self.processes
        if procs > high:
            self._shrink(procs - high)
        elif procs < low:
            self._grow(low - procs)
        return high, low

    def _grow(self, n: int) -> None:
        log.info("Scaling up %d slot(s).", n)
        self.worker.pool.grow(n)
        self.worker.resize(self.worker.pool.concurrency)

    def _shrink(self, n: int) -> None:
        n = min(n, self.processes - 1)  # a pool keeps one slot
        if n < 1:
            return
        log.info("Scaling down %d slot(s).", n)
        self.worker.pool.shrink(n)
        self.worker.resize(self.worker.pool.concurrency)

    def info(self) -> AutoscalerInfo:
        """The ``autoscaler`` part of ``inspect stats`` (Celery's shape)."""
        return {
            "max": self.max_concurrency,
            "min": self.min_concurrency,
            "current": self.processes,
            "qty": self.qty,
        }
