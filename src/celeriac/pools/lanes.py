"""ThreadLanes: run sync bodies in threads, one body per thread, with a hard limit that starts when the body does.

A lane is a thread with its own inbox. A body goes to an idle lane, or to a new one when none is idle, so a body
never waits for a thread: the pool's runners already bound how many bodies run at once. A thread cannot be
stopped, so a body that runs past its hard limit is written off: its caller gets `TimeLimitExceeded` at once,
one warning names the task, and the lane is no longer counted (the next body gets another thread); when the
body ends at last, the lane becomes idle again (or ends, when enough lanes are idle already).
The limit is measured from the moment the lane starts the body, not from the submit.
Lanes are daemon threads: a written-off body does not keep the process alive after the worker stops.
Limits reach into the thread as far as Python allows (`limits.interrupt`): at the soft limit the body gets
`SoftTimeLimitExceeded` at its next bytecode, at the hard limit `TimeLimitExceeded` (it is written off all the
same), and a caller that is cancelled (``revoke --terminate``, cold shutdown) leaves it `SystemExit`.
"""

from __future__ import annotations

import asyncio
import contextlib
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


class _Work:
    """One body handed to a lane, and what the lane tells the loop back."""

    __slots__ = ("fn", "future", "ident", "loop", "started")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop
        self.started: float | None = None  # time.monotonic() when the lane started the body
        self.ident: int | None = None  # the lane thread while the body runs (under ThreadLanes._lock)


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
        self._idle: list[queue.SimpleQueue[_Work | None]] = []
        self._count = 0
        self._closed = False
        self.written_off = 0  # bodies that ran past their limit (for the log line and tests)
        # Guards Work.ident: an interrupt is raised only in a thread still running that body, and a lane
        # clears a late one under it before it takes the next body.
        self._lock = threading.Lock()

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
        inbox = self._idle.pop() if self._idle else self._start_lane()
        inbox.put(work)
        timer = None if soft is None else loop.call_later(soft, self._interrupt, work, SoftTimeLimitExceeded)
        try:
            return await self._wait(work, limit, label, grace)
        except asyncio.CancelledError:
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

    def _start_lane(self) -> queue.SimpleQueue[_Work | None]:
        inbox: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._count += 1
        name = f"{self._name}-{self._count}"
        threading.Thread(target=self._lane, args=(inbox,), name=name, daemon=True).start()
        return inbox

    def _lane(self, inbox: queue.SimpleQueue[_Work | None]) -> None:
        try:
            while (work := inbox.get()) is not None:
                work.started = time.monotonic()
                ident = threading.get_ident()
                try:
                    try:
                        with self._lock:
                            work.ident = ident
                        value = work.fn()
                    finally:
                        with self._lock:
                            work.ident = None
                            clear_interrupt(ident)  # a limit that fired as the body ended must not hit the lane
                    outcome: tuple[bool, Any] = (True, value)
                except BaseException as exc:  # handed to the caller, like a thread pool's future does
                    outcome = (False, exc)
                # The lane is idle again before the caller hears of it, so the caller's next body can reuse it.
                if self._closed or len(self._idle) >= self._keep():
                    inbox.put(None)  # end after telling the caller
                else:
                    self._idle.append(inbox)
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                    work.loop.call_soon_threadsafe(_settle, work, *outcome)
                del work, outcome
        finally:
            loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
            if loop is not None:
                loop.close()

    def close(self) -> None:
        """End the idle lanes; busy ones end when their body does."""
        self._closed = True
        while self._idle:
            self._idle.pop().put(None)
