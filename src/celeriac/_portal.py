"""The one background event loop on which the sync facades (``delay``, ``get``, ...) run their coroutines.

The loop lives in a daemon thread started on first use. ``run`` refuses to be called from the portal's own
thread (that would deadlock) and works from any other thread, including one that runs its own event loop.

A call is handed over with ``call_soon_threadsafe`` and its end is signalled back through a plain lock
(`_Call`), not ``asyncio.run_coroutine_threadsafe``: its two chained futures (a ``concurrent.futures.Future``
waits on a ``Condition``) cost ~45 µs more per call on the 2-core benchmark VM (a no-op ``run``: 121 µs
against 76 µs, p50), and every ``delay().get()`` makes two calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

from celeriac import _loops

T = TypeVar("T")


class _Call(Generic[T]):
    """One coroutine run on the portal loop for a thread that blocks until it ends."""

    __slots__ = ("_abandoned", "_coro", "_done", "_loop", "_task")

    def __init__(self, coro: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop) -> None:
        self._coro = coro
        self._loop = loop
        self._done = threading.Lock()
        self._done.acquire()  # released (on the loop) once the task ended
        self._task: asyncio.Task[T] | None = None
        self._abandoned = False

    def start(self) -> None:
        """On the loop: run the coroutine as a task (or drop it when the caller already gave up)."""
        if self._abandoned:
            self._coro.close()
            return
        self._task = asyncio.get_running_loop().create_task(self._coro)
        self._task.add_done_callback(self._finish)

    def _finish(self, task: asyncio.Task[T]) -> None:
        if self._abandoned and not task.cancelled():
            task.exception()  # nobody will look: do not log it as never retrieved
        self._done.release()

    def _abandon(self) -> None:
        """On the loop: the caller stopped waiting (timeout, Ctrl-C); cancel the task."""
        self._abandoned = True
        if self._task is not None:
            self._task.cancel()

    def wait(self, timeout: float | None) -> T:
        """In the caller's thread: block until the task ended; its value, or its exception raised.

        When ``timeout`` seconds pass first (`TimeoutError`) or the wait is interrupted (``KeyboardInterrupt``),
        the task is cancelled.
        """
        try:
            finished = self._done.acquire(timeout=-1 if timeout is None else timeout)
        except BaseException:
            self._loop.call_soon_threadsafe(self._abandon)
            raise
        if not finished:
            self._loop.call_soon_threadsafe(self._abandon)
            raise TimeoutError(f"the call did not finish within {timeout}s")
        assert self._task is not None  # set before the lock is released
        return self._task.result()


class Portal:
    """A background event loop thread that runs coroutines for synchronous callers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's loop, started on first use."""
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                ready = threading.Event()
                # uvloop when installed, as for workers ("auto"): each sync call is two hops onto this loop.
                new_loop = _loops.factory(_loops.resolve("auto")) or asyncio.new_event_loop
                loop = new_loop()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=serve, name="celeriac-portal", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def running_loop(self) -> asyncio.AbstractEventLoop | None:
        """The portal's loop if it runs and the caller is not its own thread, else None (starts nothing)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or thread is threading.current_thread() or not thread.is_alive():
            return None
        return loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the portal loop and block until it finishes; return its value or raise its error.

        When ``timeout`` seconds pass first (`TimeoutError`) or the wait is interrupted (``KeyboardInterrupt``),
        the coroutine is cancelled.
        """
        loop = self.loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync celeriac call was made on the portal loop; await the async twin instead")
        call = _Call(coro, loop)
        loop.call_soon_threadsafe(call.start)
        return call.wait(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the portal loop without waiting: a future of its value (cancelling the future
        cancels the coroutine)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop())


portal = Portal()
