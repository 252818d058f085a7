"""One sqlite3 connection and the one thread that uses it: coroutines hand it functions to run."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from celeriac._sqlite.errors import ErrorMap

P = ParamSpec("P")
T = TypeVar("T")


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Complete ``future`` with ``result`` or ``error``, unless its awaiting coroutine was cancelled."""
    if future.done():  # the awaiting coroutine was cancelled; nobody wants the outcome
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class SQLiteThread:
    """One sqlite3 connection and the one thread that uses it.

    sqlite3 calls block, so they run on this thread, never on the event loop; one thread per connection keeps
    the connection's use serial without locks. Jobs run in submission order. sqlite3 errors leave as the
    errors of ``errors`` (nothing above this class sees a sqlite3 exception).
    """

    def __init__(self, path: str, name: str, errors: ErrorMap) -> None:
        self.path = path
        self.errors = errors
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]] | None]
        self._jobs = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    async def start(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        """Open the connection on a new thread and run ``setup`` on it. Raises ``errors.lost`` on failure."""
        if self._stopped:
            raise self.errors.closed_error()
        self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._main, args=(opened, setup), name=self._name, daemon=True)
        self._thread.start()
        await opened

    async def run(self, fn: Callable[Concatenate[sqlite3.Connection, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(connection, *args, **kwargs)`` on the thread; waits for it without blocking the loop.

        A cancelled caller does not stop ``fn``: it runs to its end (or rollback) and the outcome is dropped.
        """
        return await self.submit(fn, *args, **kwargs)

    def submit(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Future[T]:
        """Queue ``fn(connection, *args, **kwargs)`` now (jobs run in the order queued); the future gets its
        outcome. Raises ``errors.closed`` after `stop`."""
        if self._stopped or self._loop is None:
            raise self.errors.closed_error()
        future: asyncio.Future[T] = self._loop.create_future()
        self._jobs.put((lambda conn: fn(conn, *args, **kwargs), future))
        return future

    async def stop(self) -> None:
        """Run the jobs already submitted, close the connection, end the thread. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is None or self._loop is None:
            return
        barrier: asyncio.Future[None] = self._loop.create_future()
        self._jobs.put((lambda conn: None, barrier))
        self._jobs.put(None)
        with contextlib.suppress(Exception):
            await asyncio.shield(barrier)
        self._thread.join()  # only conn.close() is left to do there

    def _main(self, opened: asyncio.Future[None], setup: Callable[[sqlite3.Connection], None]) -> None:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.errors.busy_timeout, isolation_level=None, cached_statements=64
            )
            setup(conn)
        except sqlite3.Error as exc:
            self._reply(opened, None, self._translated(exc))
            return
        except BaseException as exc:  # report anything, or start() would wait forever
            self._reply(opened, None, exc)
            return
        self._reply(opened, None, None)
        try:
            while (job := self._jobs.get()) is not None:
                fn, future = job
                try:
                    result, error = fn(conn), None
                except sqlite3.Error as exc:
                    result, error = None, self._translated(exc)
                except BaseException as exc:
                    result, error = None, exc
                self._reply(future, result, error)
        finally:
            conn.close()

    def _translated(self, exc: sqlite3.Error) -> BaseException:
        error = self.errors.translate(exc)
        error.__cause__ = exc
        return error

    def _reply(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(settle, future, result, error)
