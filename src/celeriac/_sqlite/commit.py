"""Group commit: items submitted by concurrent coroutines written together, one transaction per batch."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from typing import Generic, TypeVar

from celeriac._sqlite.thread import SQLiteThread, settle
from celeriac.errors import CeleriacError

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Writes items submitted by concurrent coroutines together: one transaction per batch (group commit).

    `submit` returns once the transaction holding its item has committed. An item submitted while no batch
    is being written is queued on the thread at once; items submitted meanwhile gather and are written as the
    next batch when the current one ends, so batches grow with the load and no item waits for a timer.
    Each submitter waits on its own future, completed in one pass when its batch ends (no task, no shield:
    a cancelled submitter just stops waiting, and its item is written all the same).
    """

    def __init__(self, thread: SQLiteThread, write: Callable[[sqlite3.Connection, list[T]], None]) -> None:
        self._thread = thread
        self._write = write
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._writing: asyncio.Future[None] | None = None

    async def submit(self, item: T) -> None:
        """Write ``item`` and wait for its commit. Raises what the write raised, for the whole batch."""
        await self.enqueue(item)

    def enqueue(self, item: T) -> asyncio.Future[None]:
        """Queue ``item`` for writing; the future completes with its commit (or fails with the write)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writing is None:
            self._write_pending()
        return future

    async def drain(self) -> None:
        """Wait until everything submitted so far is written (or has failed)."""
        while self._writing is not None:
            await asyncio.wait({self._writing})

    def _write_pending(self) -> None:
        batch, self._pending = self._pending, []
        try:
            self._writing = self._thread.submit(self._write, [item for item, _ in batch])
        except CeleriacError as exc:
            self._settle(batch, exc)
            return
        self._writing.add_done_callback(functools.partial(self._written, batch))

    def _written(self, batch: list[tuple[T, asyncio.Future[None]]], job: asyncio.Future[None]) -> None:
        self._writing = None
        self._settle(batch, None if job.cancelled() else job.exception())
        if self._pending:
            self._write_pending()

    @staticmethod
    def _settle(batch: list[tuple[T, asyncio.Future[None]]], error: BaseException | None) -> None:
        for _, future in batch:
            settle(future, None, error)
