"""Rate limits: token buckets per task, and the `RateLimiter` that holds requests until their bucket allows.

A task's ``rate_limit`` is ``"10/s"``, ``"100/m"``, ``"1000/h"`` or a bare number (per second); ``None``, ``""``
or ``0`` means no limit. Each limited task has a bucket of capacity 1 refilled at that rate (Celery's choice:
no bursts). A request that finds its bucket empty waits on the timer, never in the queue reader, so other
tasks of the same queue keep flowing; requests of one task leave in the order they came.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable

from celeriac.worker.request import Request
from celeriac.worker.timer import Timer

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(value: str | float | None) -> float | None:
    """Tasks per second for a rate string; None for no limit. Raises ValueError naming a bad string."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value) or None
    text = value.strip()
    if not text:
        return None
    amount, _, unit = text.partition("/")
    try:
        number = float(amount)
    except ValueError:
        raise ValueError(repr(value)) from None
    per = _UNITS.get(unit.strip().lower()[:1] or "s")
    if per is None or number < 0:
        raise ValueError(repr(value))
    return number / per or None


class TokenBucket:
    """``rate`` tokens per second, holding at most ``capacity``; starts full."""

    def __init__(self, rate: float, capacity: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def consume(self, tokens: float = 1.0) -> bool:
        """Take ``tokens`` if the bucket holds them now."""
        self._refill()
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False

    def expected_time(self, tokens: float = 1.0) -> float:
        """Seconds until ``tokens`` are available (0 when they are)."""
        self._refill()
        return max(0.0, (tokens - self._tokens) / self.rate)


class RateLimiter:
    """Holds requests of rate-limited tasks; calls ``release(request)`` when each may run.

    Args:
        timer: schedules the next look at a task's queue.
        release: called with each request whose turn came (the strategy reserves it).
        default_rate: the rate of tasks without their own (``task_default_rate_limit``).
    """

    def __init__(self, timer: Timer, release: Callable[[Request], None], default_rate: str | None = None) -> None:
        self.timer = timer
        self.release = release
        self.default_rate = default_rate
        self._buckets: dict[str, TokenBucket | None] = {}
        self._waiting: dict[str, deque[Request]] = {}
        self._handles: dict[str, asyncio.TimerHandle] = {}

    def bucket(self, request: Request) -> TokenBucket | None:
        """The bucket of the request's task (created from its current rate limit), or None if unlimited."""
        name = request.task.name
        if name not in self._buckets:
            rate = parse_rate(request.task.rate_limit or self.default_rate)
            self._buckets[name] = TokenBucket(rate) if rate else None
        return self._buckets[name]

    def admit(self, request: Request) -> bool:
        """True if ``request`` may run now; else it is held (and released later) and False is returned."""
        name = request.task.name
        bucket = self.bucket(request)
        if bucket is None or (not self._waiting.get(name) and bucket.consume()):
            return True
        self._waiting.setdefault(name, deque()).append(request)
        self._schedule(name, bucket)
        return False

    def _schedule(self, name: str, bucket: TokenBucket) -> None:
        if name not in self._handles:
            when = time.time() + bucket.expected_time()
            self._handles[name] = self.timer.call_at(when, lambda: self._pump(name))

    def _pump(self, name: str) -> None:
        self._handles.pop(name, None)
        waiting = self._waiting.get(name)
        bucket = self._buckets.get(name)
        while waiting and (bucket is None or bucket.consume()):
            self.release(waiting.popleft())
        if waiting and bucket is not None:
            self._schedule(name, bucket)
        elif not waiting:
            self._waiting.pop(name, None)

    def reset(self, task_name: str) -> None:
        """The task's rate limit changed: rebuild its bucket and release what the new rate allows now."""
        self._buckets.pop(task_name, None)
        handle = self._handles.pop(task_name, None)
        if handle is not None:
            self.timer.cancel(handle)
        waiting = self._waiting.get(task_name)
        if waiting:
            self._buckets[task_name] = self.bucket(waiting[0])
            self._pump(task_name)

    def take(self, ids: Iterable[str] | None = None) -> list[Request]:
        """Remove and return the held requests with these ids (all of them when ``ids`` is None)."""
        wanted = None if ids is None else set(ids)
        taken: list[Request] = []
        for name, waiting in list(self._waiting.items()):
            keep = deque(r for r in waiting if wanted is not None and r.id not in wanted)
            taken += [r for r in waiting if wanted is None or r.id in wanted]
            self._waiting[name] = keep
            if not keep:
                del self._waiting[name]
                handle = self._handles.pop(name, None)
                if handle is not None:
                    self.timer.cancel(handle)
        return taken

    def requests(self) -> list[Request]:
        """Every held request."""
        return [r for waiting in self._waiting.values() for r in waiting]

    def __len__(self) -> int:
        return sum(len(waiting) for waiting in self._waiting.values())
