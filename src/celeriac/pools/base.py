"""The Pool interface: run jobs with bounded concurrency, and execute task bodies the pool's way.

A pool has ``concurrency`` runners pulling jobs from one queue, so at most that many jobs run at once and the
rest wait in order. A body to run is described by a picklable `Call`; ``execute(call)`` looks the task up in
the registry the pool was given and sets ``self.request`` where the body runs. Pools differ only in
`run_body`: where a task body runs (the loop, or a thread of `lanes.ThreadLanes`). A hard time limit counts
from the moment the body starts, never from the wait for a slot.
Promises: ``stop()`` waits for running jobs; ``terminate()`` cancels them; ``take_pending()`` hands back jobs
that have not started, so the worker can return their messages to the broker.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from celeriac.app.current import request_var
from celeriac.errors import TimeLimitExceeded
from celeriac.pools.call import Call

if TYPE_CHECKING:
    from celeriac.app.registry import TaskRegistry
    from celeriac.app.task import Task
    from celeriac.settings import Settings

log = logging.getLogger(__name__)


class Job(Protocol):
    """A unit of work the pool runs (the tracer's run of one request)."""

    async def run(self) -> None:
        """Do the work; must not raise except CancelledError."""
        ...


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """What ``inspect stats`` reports under ``pool``."""

    implementation: str
    max_concurrency: int
    running: int
    waiting: int
    completed: int
    processes: tuple[int, ...] = ()  # child pids (prefork); empty: bodies run in the worker process
    max_tasks_per_child: int | None = None
    writes: dict[int, int] | None = None  # child pid -> bodies sent to it (prefork)


class Pool(abc.ABC):
    """Bounded-concurrency runner of jobs; subclasses decide how a task body executes."""

    implementation: str = "base"

    def __init__(self, concurrency: int, tasks: TaskRegistry, conf: Settings | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.tasks = tasks  # where `execute` finds a Call's task by name
        self.conf = conf  # the app's settings (prefork reads its worker_* settings; None in bare tests)
        self._queue: asyncio.Queue[Job] | None = None
        self._runners: list[asyncio.Task[None]] = []
        self._running: dict[asyncio.Task[None], Job] = {}
        self._completed = 0
        self._retiring = 0  # runners to stop when their current job ends (shrink of a busy pool)
        self._idle = asyncio.Event()  # set while no job runs
        self._signals: dict[asyncio.Task[Any], int] = {}  # runner -> signal of a `cancel(job, signum)`
        self._idle.set()

    async def start(self) -> None:
        """Start the runners."""
        self._queue = asyncio.Queue()
        for index in range(self.concurrency):
            self._runners.append(asyncio.create_task(self._runner(), name=f"pool-runner-{index}"))

    async def _runner(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            current = asyncio.current_task()
            assert current is not None
            self._running[current] = job
            self._idle.clear()
            try:
                await job.run()
            except asyncio.CancelledError:
                raise
            except Exception:  # a job must not kill its runner
                log.exception("Unexpected error in a pool job")
            finally:
                self._running.pop(current, None)
                self._signals.pop(current, None)
                self._completed += 1
                if not self._running:
                    self._idle.set()
            if self._retiring:
                self._retiring -= 1
                self._runners.remove(current)
                return

    def submit(self, job: Job) -> None:
        """Queue ``job``; it starts when a runner is free."""
        if self._queue is None:
            raise RuntimeError("pool is not started")
        self._queue.put_nowait(job)

    @property
    def free_slots(self) -> int:
        """Runners with nothing to do right now."""
        waiting = self._queue.qsize() if self._queue else 0
        return max(0, self.concurrency - len(self._running) - waiting)

    def take_pending(self) -> list[Job]:
        """Remove and return the jobs that have not started yet."""
        pending: list[Job] = []
        while self._queue is not None and not self._queue.empty():
            pending.append(self._queue.get_nowait())
        return pending

    def running_jobs(self) -> list[Job]:
        """The jobs running now."""
        return list(self._running.values())

    async def wait_idle(self) -> None:
        """Wait until no job is running (jobs still queued may start afterwards)."""
        await self._idle.wait()

    async def stop(self) -> None:
        """Wait for the running jobs, then stop the runners (pending jobs should be taken first)."""
        await self.wait_idle()
        await self._cancel_runners()

    async def terminate(self) -> None:
        """Cancel running jobs now and stop the runners."""
        await self._cancel_runners()

    async def _cancel_runners(self) -> None:
        for runner in self._runners:
            runner.cancel()
        for runner in self._runners:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        self._runners.clear()
        self._running.clear()
        self._idle.set()

    def grow(self, n: int = 1) -> None:
        """Add ``n`` runners."""
        for _ in range(n):
            self._runners.append(asyncio.create_task(self._runner(), name="pool-runner"))
        self.concurrency += n

    def shrink(self, n: int = 1) -> None:
        """Remove ``n`` runners (never the last): idle ones stop now, busy ones when their job ends.

        Raises:
            ValueError: the pool would have no runner left.
        """
        if n < 1 or n >= self.concurrency:
            raise ValueError(f"cannot shrink a pool of {self.concurrency} by {n}")
        self.concurrency -= n
        idle = [runner for runner in self._runners if runner not in self._running]
        for runner in idle[:n]:
            runner.cancel()
            self._runners.remove(runner)
        self._retiring += n - min(n, len(idle))

    def cancellable(self, task: Task[Any, Any]) -> bool:
        """Whether `cancel` can stop a running body of ``task`` (async bodies on the worker's loop)."""
        return False

    def cancel(self, job: Job, signum: int | None = None) -> bool:
        """Cancel the running ``job`` (its `run` sees CancelledError); False when it is not running.

        ``signum`` is the signal ``revoke --terminate`` asked for: a pool of processes sends it to the child
        running the body (`cancel_signal`); the others stop the body their own way.
        """
        for runner, running in self._running.items():
            if running is job:
                if signum is not None:
                    self._signals[runner] = signum
                runner.cancel()
                return True
        return False

    def cancel_signal(self) -> int | None:
        """In a cancelled runner: the signal `cancel` was given for it (None: a shutdown, no signal asked)."""
        current = asyncio.current_task()
        return self._signals.pop(current, None) if current is not None else None

    def statistics(self) -> PoolStatistics:
        """A snapshot for ``inspect stats``."""
        return PoolStatistics(
            implementation=self.implementation,
            max_concurrency=self.concurrency,
            running=len(self._running),
            waiting=self._queue.qsize() if self._queue else 0,
            completed=self._completed,
        )

    async def execute(self, call: Call) -> Any:
        """Run the body ``call`` names, with ``self.request`` set, and return its value.

        Raises:
            UnknownTask: the pool's registry has no task of that name.
            TimeLimitExceeded: the body ran past ``call.time_limit`` seconds, counted from when it started.
            BaseException: whatever the body raised (Retry, Reject, Ignore and failures alike).
        """
        task = self.tasks[call.task]
        # The request context is set here, where the body runs (a thread copies the context it is started
        # in), not by the caller: a child process will do the same with the Call it receives.
        token = request_var().set(call.request)
        try:
            return await self.run_body(task, call)
        finally:
            request_var().reset(token)

    @abc.abstractmethod
    async def run_body(self, task: Task[Any, Any], call: Call) -> Any:
        """Run the body of ``task`` with ``call``'s arguments the way this pool does, within its time limit."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most pools own nothing
        """Release the pool's threads or processes (after stop or terminate)."""


async def bounded(body: Awaitable[Any], limit: float | None, name: str) -> Any:
    """Await ``body`` (on the current loop); cancel it after ``limit`` seconds with `TimeLimitExceeded`.

    A TimeoutError the body raises itself stays a TimeoutError (only the limit's own expiry is translated).
    """
    if limit is None:
        return await body
    timeout = asyncio.timeout(limit)
    try:
        async with timeout:
            return await body
    except TimeoutError:
        if timeout.expired():
            raise TimeLimitExceeded(f"Time limit ({limit:g}s) exceeded for {name}") from None
        raise
