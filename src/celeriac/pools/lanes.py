"""ThreadLanes: run sync bodies in threads, one body per thread, with a hard limit that starts when the body does.

The lanes share one inbox. A body is put there and taken by a thread that is free; there are always at least as
many (counted) threads as bodies queued or running, so a body never waits for a thread: the pool's runners already
bound how many bodies run at once. A thread that ends a body takes the next one from the inbox without going to
sleep, and finished bodies are handed back to the loop in batches (one wake-up of the loop for all that finished
while it was busy), so under load a body costs no thread wake-up and a fraction of a loop wake-up. At most
``keep()`` idle threads are kept; an idle thread beyond that ends.
A thread cannot be stopped, so a body that runs past its hard limit is written off: its caller gets
`TimeLimitExceeded` at once, one warning names the task, and the thread is no longer counted (the next body gets
another thread); when the body ends at last, the thread counts again (or ends, when enough are idle already).
The limit is measured from the moment a thread starts the body, not from the submit.
Lanes are daemon threads: a written-off body does not keep the process alive after the worker stops.
Limits reach into the thread as far as Python allows (`limits.interrupt`): at the soft limit the body gets
`SoftTimeLimitExceeded` at its next bytecode, at the hard limit `TimeLimitExceeded` (it is written off all the
same), and a caller that is cancelled (``revoke --terminate``, cold shutdown) leaves it `SystemExit`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from celeriac.errors import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.pools.limits import clear_interrupt, interrupt

log = logging.getLogger("celeriac.pools")

_local = threading.local()  # the lane's own event loop, for async bodies run in a lane (`lane_loop`)


def lane_loop() -> asyncio.AbstractEventLoop:
    """The event loop of the current lane thread (made on first use, closed when the lane ends)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None:
        loop = _local.loop = asyncio.new_event_loop()
    return loop


def _close_lane_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close a lane's loop as ``asyncio.run`` closes its own: what async bodies left running there (a result
    backend's pub/sub reader, say) is cancelled and given up to 5 s to end on the loop, so nothing is left for the
    garbage collector to finish outside any loop."""
    try:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=5.0))
        loop.run_until_complete(loop.shutdown_asyncgens())
    except Exception:  # the lane ends either way
        log.debug("closing a lane's event loop", exc_info=True)
    finally:
        loop.close()


class _Work:
    """One body handed to the lanes, and what the thread tells the loop back."""

    __slots__ = ("abandoned", "fn", "future", "ident", "loop", "started", "written_off")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop
        self.started: float | None = None  # time.monotonic() when a thread started the body
        self.ident: int | None = None  # the thread while the body runs (under ThreadLanes._lock)
        self.written_off = False  # the caller gave up on it at its hard limit (under ThreadLanes._lock)
        self.abandoned = False  # the caller was cancelled: a body not started yet is not started at all


def _settle(work: _Work, ok: bool, value: Any) -> None:
    future = work.future  # read on the loop: `run` may have replaced it after a deadline the body had not reached
    if future.done():  # the caller gave up (time limit, cancellation): nobody reads the outcome
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class ThreadLanes:
    """Threads for sync bodies, made on demand; at most ``keep()`` idle ones are kept."""

    def __init__(self, name: str, keep: Callable[[], int]) -> None:
        self._name = name
        self._keep = keep
        self._inbox: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._started = 0  # threads ever started (for their names)
        # Under _lock: threads counted (alive, not running a written-off body), bodies running in them, bodies
        # put in the inbox and not taken yet.
        self._threads = 0
        self._busy = 0
        self._queued = 0
        self._closed = False
        self.written_off = 0  # bodies that ran past their limit (for the log line and tests)
        # Guards the counts and Work.ident: an interrupt is raised only in a thread still running that body,
        # and a thread clears a late one under it before it takes the next body.
        self._lock = threading.Lock()
        # Finished bodies waiting for their loop, by loop; a loop is in the dict once its wake-up is on its way.
        self._done: dict[asyncio.AbstractEventLoop, list[tuple[_Work, bool, Any]]] = {}

    def _interrupt(self, work: _Work, exc: type[BaseException]) -> None:
        with self._lock:
            if work.ident is not None:
                interrupt(work.ident, exc)

    async def run(
        self,
        fn: Callable[[], Any],
        limit: float | None = None,
        label: str = "",
        grace: float = 0,
        soft: float | None = None,
    ) -> Any:
        """Run ``fn()`` (in a copy of the current context) in a lane and return its value.

        ``soft``: seconds after which `SoftTimeLimitExceeded` is raised in the thread (None: never).

        Raises:
            TimeLimitExceeded: ``fn`` ran more than ``limit`` seconds (+ ``grace`` before the lane is written
                off: a body that stops itself at its limit gets that long to do so).
            BaseException: whatever ``fn`` raised.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        work = _Work(functools.partial(contextvars.copy_context().run, fn), future, loop)
        with self._lock:
            self._queued += 1
            short = self._queued + self._busy > self._threads
            if short:
                self._threads += 1
        if short:
            self._start_lane()
        self._inbox.put(work)
        timer = None if soft is None else loop.call_later(soft, self._interrupt, work, SoftTimeLimitExceeded)
        try:
            return await self._wait(work, limit, label, grace)
        except asyncio.CancelledError:
            work.abandoned = True
            self._interrupt(work, SystemExit)  # nobody waits for this body any more: stop it if Python can
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def _wait(self, work: _Work, limit: float | None, label: str, grace: float) -> Any:
        loop = work.loop
        if limit is None:
            return await work.future
        # asyncio.timeout around the future, not asyncio.wait((future,), timeout): measured with 8 runners of a
        # no-op body and a limit, ~20,600 bodies/s (as the executor with asyncio.timeout before) against ~17,700.
        remaining = limit + grace
        while remaining > 0:
            timeout = asyncio.timeout(remaining)
            try:
                async with timeout:
                    return await work.future
            except TimeoutError:
                if not timeout.expired():
                    raise  # the body's own TimeoutError
                if work.future.done() and not work.future.cancelled():
                    return work.future.result()  # it ended in the same instant as the deadline
            started = work.started
            remaining = limit + grace if started is None else started + limit + grace - time.monotonic()
            work.future = loop.create_future()  # the deadline cancelled the old one; the lane settles this one
        work.future.cancel()  # nobody reads the outcome of a written-off body
        with self._lock:
            if work.ident is not None:  # still running: its thread stops counting until the body ends
                work.written_off = True
                self._busy -= 1
                self._threads -= 1
        self._interrupt(work, TimeLimitExceeded)  # a body running Python code stops here; one blocked in C cannot
        self.written_off += 1
        log.warning(
            "Task %s ran past its hard time limit (%gs) in a thread that cannot be stopped: the thread is written "
            "off and replaced (%d written off so far)",
            label,
            limit,
            self.written_off,
        )
        raise TimeLimitExceeded(f"Time limit ({limit:g}s) exceeded for {label}")

    def _start_lane(self) -> None:
        self._started += 1
        name = f"{self._name}-{self._started}"
        threading.Thread(target=self._lane, name=name, daemon=True).start()

    def _lane(self) -> None:
        inbox = self._inbox
        lock = self._lock
        ident = threading.get_ident()
        try:
            while (work := inbox.get()) is not None:
                work.started = time.monotonic()
                try:
                    try:
                        with lock:
                            self._queued -= 1
                            self._busy += 1
                            work.ident = ident
                        if work.abandoned:
                            raise asyncio.CancelledError  # cancelled before it started: never run it
                        value = work.fn()
                    finally:
                        with lock:
                            work.ident = None
                            clear_interrupt(ident)  # a limit that fired as the body ended must not hit the lane
                            if work.written_off:
                                self._threads += 1  # counted again: it was written off, not ended
                            else:
                                self._busy -= 1
                    outcome: tuple[bool, Any] = (True, value)
                except BaseException as exc:  # handed to the caller, like a thread pool's future does
                    outcome = (False, exc)
                with lock:
                    # Idle threads beyond keep() end, unless a body is waiting for one.
                    ending = self._closed or (
                        self._threads - self._busy > self._keep() and self._queued < self._threads - self._busy
                    )
                    if ending:
                        self._threads -= 1
                self._deliver(work, *outcome)
                del work, outcome
                if ending:
                    return
            with lock:
                self._threads -= 1
        finally:
            loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
            if loop is not None:
                _close_lane_loop(loop)

    def _deliver(self, work: _Work, ok: bool, value: Any) -> None:
        """Hand an outcome to its loop: one wake-up of the loop carries every outcome that is ready by then."""
        loop = work.loop
        with self._lock:
            waiting = self._done.get(loop)
            if waiting is not None:
                waiting.append((work, ok, value))
                return
            self._done[loop] = [(work, ok, value)]
        try:
            loop.call_soon_threadsafe(self._drain, loop)
        except RuntimeError:  # a closed loop: nobody waits any more
            with self._lock:
                self._done.pop(loop, None)

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            done = self._done.pop(loop, ())
        for work, ok, value in done:
            _settle(work, ok, value)

    def close(self) -> None:
        """End the idle lanes; busy ones end when their body does."""
        with self._lock:
            self._closed = True
            idle = self._threads - self._busy
        for _ in range(max(0, idle)):
            self._inbox.put(None)
