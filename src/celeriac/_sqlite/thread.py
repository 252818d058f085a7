"""One sqlite3 connection and the one thread that uses it: coroutines hand it functions to run."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from celeriac._sqlite.connection import connect
from celeriac._sqlite.errors import ErrorMap
from celeriac._sqlite.identity import FileIdentity

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

    def __init__(self, path: str, name: str, errors: ErrorMap, check_file_every: float | None = None) -> None:
        """``check_file_every``: at most this often (s), before a job, check that ``path`` is still the file the
        connection opened (same device and inode); once it is not, that job and every later one raise
        ``errors.lost`` (a connection to a deleted or replaced file would otherwise work on, unseen by anyone)."""
        self.path = path
        self.errors = errors
        self._name = name
        self._check_every = check_file_every
        self._identity: FileIdentity | None = None
        self._next_check = 0.0
        self._gone: str | None = None
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
            conn = connect(self.path, self.errors.busy_timeout)
            setup(conn)
            if self._check_every is not None:
                self._identity = FileIdentity(self.path)
        except sqlite3.Error as exc:
            self._reply(opened, None, self._translated(exc))
            return
        except OSError as exc:
            self._reply(opened, None, self.errors.lost(f"{self.errors.where}: {exc}"))
            return
        except BaseException as exc:  # report anything, or start() would wait forever
            self._reply(opened, None, exc)
            return
        self._reply(opened, None, None)
        try:
            while (job := self._jobs.get()) is not None:
                fn, future = job
                try:
                    self._check_file(conn)
                    result, error = fn(conn), None
                except sqlite3.Error as exc:
                    result, error = None, self._translated(exc)
                except BaseException as exc:
                    result, error = None, exc
                self._reply(future, result, error)
        finally:
            conn.close()

    def _check_file(self, conn: sqlite3.Connection) -> None:
        """Raise ``errors.lost`` if ``path`` is no longer the file opened (checked at most every
        ``check_file_every`` s: one stat, ~1 us, so a busy connection pays nothing worth measuring). On the
        first finding, close the connection and remove the WAL files it leaves (see `FileIdentity`)."""
        if self._gone is None and self._identity is not None and self._check_every is not None:
            now = time.monotonic()
            if now < self._next_check:
                return
            self._next_check = now + self._check_every
            gone = self._identity.lost()
            if gone is None:
                return
            self._gone = gone
            self._identity.abandon(conn, self.errors.where, gone)
        if self._gone is not None:
            raise self.errors.lost(f"{self.errors.where}: the database file {self._gone}")

    def _translated(self, exc: sqlite3.Error) -> BaseException:
        error = self.errors.translate(exc)
        error.__cause__ = exc
        return error

    def _reply(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(settle, future, result, error)
