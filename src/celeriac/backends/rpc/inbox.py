"""Inbox: what one ``rpc://`` client received on its reply queue, and who waits for it; no I/O.

The reply queue carries the states of every task this client sent, in any order and for any task. The inbox
keeps the latest state per task id until a caller reads it (Celery keeps such "out of band" results too), bounded:
past ``limit`` unread ids the oldest is dropped with a warning. A final state (SUCCESS, FAILURE, REVOKED) is never
replaced by a later non-final one (a redelivered run's STARTED after its first run's SUCCESS), and once read it
stays in a small cache of read results, so a second handle on the same id still gets it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from celeriac.backends.base import READY_STATES, TaskMeta, pending_meta
from celeriac.errors import BackendError
from celeriac.errors import TimeoutError as ResultTimeout

log = logging.getLogger("celeriac.backends.rpc")

EXPECTED_FACTOR = 10
"""The inbox remembers this many times ``limit`` ids it sent whose result nobody read (fire and forget)."""


def not_sent_here(task_id: str) -> BackendError:
    """The error for an id this client knows nothing about."""
    return BackendError(
        f"rpc:// sends a task's result only to the client that sent it, and this one has no record of task "
        f"{task_id} (sent by another client or event loop, or its result was already read or forgotten); "
        "use a result backend that keeps records (redis://, sqlite://) to read results from anywhere"
    )


class Inbox:
    """The latest state per task id received on one reply queue, the ids sent from here, and the waiters."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._expected: OrderedDict[str, None] = OrderedDict()  # sent from here, final state not read yet
        self._unread: OrderedDict[str, TaskMeta] = OrderedDict()  # latest state received, not read yet
        self._read: OrderedDict[str, TaskMeta] = OrderedDict()  # final states already handed to a reader
        self._waiters: dict[str, list[asyncio.Future[TaskMeta]]] = {}
        self.dropped = 0  # unread results dropped because the inbox was full

    def expect(self, task_id: str) -> None:
        """Remember that ``task_id`` was sent from here (its states will come to this inbox)."""
        self._expected[task_id] = None
        self._expected.move_to_end(task_id)
        while len(self._expected) > self.limit * EXPECTED_FACTOR:
            self._expected.popitem(last=False)

    def put(self, task_id: str, meta: TaskMeta) -> None:
        """A state of ``task_id`` arrived: hand a final one to its waiters, else keep it as the latest."""
        ready = meta.get("status") in READY_STATES
        waiters = self._waiters.pop(task_id, None) if ready else None
        if waiters:
            for future in waiters:
                if not future.done():
                    future.set_result(meta)
            self._mark_read(task_id, meta)
            return
        current = self._unread.get(task_id) or self._read.get(task_id)
        if current is not None and current.get("status") in READY_STATES and not ready:
            return  # a final state is final
        self._unread[task_id] = meta
        self._unread.move_to_end(task_id)
        while len(self._unread) > self.limit:
            old_id, old = self._unread.popitem(last=False)
            self.dropped += 1
            log.warning(
                "rpc:// result of task %s (%s) dropped unread: more than %d results arrived that nobody read "
                "(result_subscribe_max_unread)",
                old_id,
                old.get("status"),
                self.limit,
            )

    def meta(self, task_id: str) -> TaskMeta:
        """The latest state of ``task_id`` without waiting (PENDING when none came yet).

        Raises:
            BackendError: ``task_id`` was not sent from here and nothing came for it.
        """
        found = self._unread.get(task_id) or self._read.get(task_id)
        if found is not None:
            if found.get("status") in READY_STATES:
                self._mark_read(task_id, found)
            return found
        if task_id not in self._expected:
            raise not_sent_here(task_id)
        return pending_meta(task_id)

    async def wait(self, task_id: str, timeout: float | None) -> TaskMeta:
        """The final state of ``task_id``, once it arrives.

        Raises:
            BackendError: ``task_id`` was not sent from here and nothing came for it.
            celeriac.errors.TimeoutError: ``timeout`` seconds passed first.
        """
        found = self.meta(task_id)
        if found.get("status") in READY_STATES:
            return found
        future: asyncio.Future[TaskMeta] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(future)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise ResultTimeout(f"the result of task {task_id} did not arrive within {timeout} s") from None
        finally:
            waiters = self._waiters.get(task_id)
            if waiters and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self._waiters[task_id]

    def forget(self, task_id: str) -> None:
        """Drop everything known about ``task_id``."""
        self._expected.pop(task_id, None)
        self._unread.pop(task_id, None)
        self._read.pop(task_id, None)

    def fail_waiters(self, error: BaseException) -> None:
        """Wake every waiter with ``error`` (the backend is closing)."""
        waiters, self._waiters = self._waiters, {}
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)

    def counts(self) -> tuple[int, int, int]:
        """(expected, unread, waiting) ids: for statistics and tests."""
        return len(self._expected), len(self._unread), len(self._waiters)

    def _mark_read(self, task_id: str, meta: TaskMeta) -> None:
        self._expected.pop(task_id, None)
        self._unread.pop(task_id, None)
        self._read[task_id] = meta
        self._read.move_to_end(task_id)
        while len(self._read) > self.limit:
            self._read.popitem(last=False)
