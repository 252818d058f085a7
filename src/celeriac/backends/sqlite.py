"""Task results in the embedded SQLite database: one row per task id, on a connection of its own.

By default the file is the broker's (``sqlite://`` is ``./celeriac.db`` for both), but this backend opens its
own connection and thread, so result traffic never queues behind broker traffic. Promises beyond
`celeriac.backends.base`:

* concurrent ``store`` calls commit in one transaction (group commit); each returns after the commit;
* an expired row reads as PENDING at once and is deleted later (at most every ``cleanup_interval`` s, by a
  ``store``);
* ``wait`` costs one shared poller per backend however many callers wait: it reads the rows of every awaited
  task in one query whenever ``PRAGMA data_version`` says another connection committed (polled from 1 ms
  backing off to ``polling_interval``) or this backend stored something.

The join and the lease (`sqlite_primitives`) are rows of their own tables in the same file, each call one
transaction.

``options.extra`` keys: ``busy_timeout`` (default 5 s), ``polling_interval`` (default 0.05 s),
``cleanup_interval`` (default 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from typing import Any

from celeriac import errors
from celeriac._sqlite.commit import GroupCommit
from celeriac._sqlite.config import database_path, option_number
from celeriac._sqlite.connection import prepare, read_data_version, write_transaction
from celeriac._sqlite.errors import ErrorMap
from celeriac._sqlite.sql import load_queries
from celeriac._sqlite.thread import SQLiteThread
from celeriac._sqlite.watch import ChangeWatcher
from celeriac.backends import sqlite_chords as chords
from celeriac.backends import sqlite_primitives as primitives
from celeriac.backends.base import (
    READY_STATES,
    BackendOptions,
    ChordJoin,
    ChordMember,
    ResultBackend,
    TaskMeta,
    pending_meta,
)
from celeriac.errors import BackendError, CeleriacError

SQL = load_queries(__package__ or "celeriac.backends", "sqlite.sql")
_READY = json.dumps(sorted(READY_STATES))


def _setup(conn: sqlite3.Connection) -> None:
    prepare(conn, SQL["schema"])


def _store_batch(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
    with write_transaction(conn):
        conn.executemany(SQL["store"], rows)  # in submission order: STARTED then SUCCESS ends as SUCCESS


def _get(conn: sqlite3.Connection, task_id: str, now: float) -> bytes | None:
    row = conn.execute(SQL["get"], {"task_id": task_id, "now": now}).fetchone()
    return None if row is None else bytes(row[0])


def _get_ready(conn: sqlite3.Connection, task_ids: str, now: float) -> tuple[int, list[tuple[str, bytes]]]:
    version = read_data_version(conn)  # first: a commit after this read wakes the poller again
    rows = conn.execute(SQL["get_ready"], {"task_ids": task_ids, "states": _READY, "now": now}).fetchall()
    return version, [(str(task_id), bytes(meta)) for task_id, meta in rows]


def _write(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> None:
    with write_transaction(conn):
        conn.execute(sql, params)


class SQLiteBackend(ResultBackend):
    """Results in the SQLite file a ``sqlite://`` URL names (see the module docstring)."""

    def __init__(self, url: str, options: BackendOptions) -> None:
        super().__init__(options)
        self.url = url
        self.path = database_path(url)
        extra = options.extra
        busy_timeout = option_number(extra, "busy_timeout", 5.0)
        self._cleanup_interval = option_number(extra, "cleanup_interval", 60.0)
        where = f"sqlite result backend {self.path}"
        self._thread = SQLiteThread(
            self.path,
            "celeriac-sqlite-results",
            ErrorMap(where, BackendError, BackendError, BackendError, busy_timeout),
        )
        self._watcher = ChangeWatcher(self._thread, option_number(extra, "polling_interval", 0.05))
        self._stores = GroupCommit(self._thread, _store_batch)
        self._waiting: dict[str, list[asyncio.Future[TaskMeta]]] = {}
        self._poke = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._next_cleanup = 0.0
        self._opened = False
        self._closed = False

    async def connect(self) -> None:
        """Open (and if needed create) the database file. Raises `BackendError` when that fails."""
        if self._closed:
            raise self._thread.errors.closed_error()
        if not self._opened:
            await self._thread.start(_setup)
            self._watcher.listen(self._poke)
            self._opened = True

    async def close(self) -> None:
        """Fail pending waits with `BackendError`, close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        self._fail_waiters(self._thread.errors.closed_error())
        await self._stores.drain()
        await self._watcher.close()
        await self._thread.stop()

    async def store(self, meta: TaskMeta, expires: float | None = None) -> None:
        """Save ``meta`` (batched with concurrent stores); a live SUCCESS row is never replaced."""
        self._check_open()
        expires = self.options.expires if expires is None else expires
        now = time.time()
        row = {
            "task_id": meta["task_id"],
            "status": meta["status"],
            "meta": self.encode_meta(meta),
            "expires_at": now + expires if expires else None,
            "now": now,
        }
        await self._stores.submit(row)
        self._watcher.notify()
        if now >= self._next_cleanup:
            self._next_cleanup = now + self._cleanup_interval
            await self._thread.run(primitives.purge_expired, now)
            await self._thread.run(chords.purge_expired, now)

    async def get_meta(self, task_id: str) -> TaskMeta:
        self._check_open()
        raw = await self._thread.run(_get, task_id, time.time())
        return pending_meta(task_id) if raw is None else self.decode_meta(raw)

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskMeta:
        """The record of ``task_id`` once it is ready.

        Raises:
            celeriac.errors.TimeoutError: not ready after ``timeout`` seconds.
            BackendError: the store failed, or the backend was closed while waiting.
        """
        meta = await self.get_meta(task_id)
        if meta["status"] in READY_STATES:
            return meta
        future: asyncio.Future[TaskMeta] = asyncio.get_running_loop().create_future()
        # The poller reads again right after registration, so a result stored since get_meta is not missed.
        self._waiting.setdefault(task_id, []).append(future)
        self._poke.set()
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll())
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            if future.done() and not future.cancelled() and future.exception() is None:
                return future.result()  # became ready in the same instant as the deadline
            raise errors.TimeoutError(f"task {task_id} is not ready after {timeout:g} s") from None
        finally:
            waiters = self._waiting.get(task_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiting.pop(task_id, None)

    async def forget(self, task_id: str) -> None:
        self._check_open()
        await self._thread.run(_write, SQL["forget"], {"task_id": task_id})

    async def join_add(
        self, group_id: str, index: int, meta: TaskMeta, size: int, expires: float | None = None
    ) -> list[TaskMeta] | None:
        """See `ResultBackend.join_add`: one transaction. Raises ValueError for an index outside the group."""
        self._check_open()
        if not 0 <= index < size:
            raise ValueError(f"member index {index} is outside a group of {size}")
        ttl = self.options.expires if expires is None else expires
        now = time.time()
        found = await self._thread.run(
            primitives.join_add, group_id, index, self.encode_meta(meta), size, now + ttl if ttl else None, now
        )
        return None if found is None else [self.decode_meta(raw) for raw in found]

    def _expires_at(self, now: float) -> float | None:
        ttl = self.options.expires
        return now + ttl if ttl else None

    async def chord_start(self, group_id: str, size: int) -> None:
        """See `ResultBackend.chord_start` (`sqlite_chords`)."""
        self._check_open()
        await self._thread.run(chords.chord_start, group_id, size, self._expires_at(time.time()))

    async def chord_part(
        self, group_id: str, index: int, member: ChordMember, size: int | None, claim_ttl: float
    ) -> ChordJoin:
        """See `ResultBackend.chord_part`: one transaction (`sqlite_chords`)."""
        self._check_open()
        now, token = time.time(), uuid.uuid4().hex
        entry = self.encode_member(member)
        status, entries = await self._thread.run(
            chords.chord_part, group_id, index, member.task_id, entry, size, self._expires_at(now),
            (token, now + claim_ttl), now,
        )  # fmt: skip
        if status != "claimed":
            return ChordJoin(status)  # type: ignore[arg-type]  # one of the four (sqlite_chords)
        return ChordJoin("claimed", token, tuple(self.decode_member(e) for e in entries))

    async def chord_done(self, group_id: str, token: str) -> bool:
        """See `ResultBackend.chord_done`."""
        self._check_open()
        done: bool = await self._thread.run(chords.chord_done, group_id, token, self._expires_at(time.time()))
        return done

    async def save_group(self, group_id: str, value: dict[str, Any]) -> None:
        """Keep a saved GroupResult."""
        self._check_open()
        raw = self._dumps(value)[2]
        await self._thread.run(chords.save_group, group_id, raw, self._expires_at(time.time()))

    async def restore_group(self, group_id: str) -> dict[str, Any] | None:
        """The saved group, or None."""
        self._check_open()
        raw = await self._thread.run(chords.restore_group, group_id, time.time())
        return None if raw is None else dict(self.decode_meta(raw))

    async def forget_group(self, group_id: str) -> None:
        """Delete the saved group."""
        self._check_open()
        await self._thread.run(chords.forget_group, group_id)

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> int | None:
        self._check_open()
        return await self._thread.run(primitives.acquire_lease, name, holder, ttl, time.time())

    async def renew_lease(self, name: str, holder: str, token: int, ttl: float) -> bool:
        self._check_open()
        return await self._thread.run(primitives.renew_lease, name, holder, token, ttl, time.time())

    async def release_lease(self, name: str, holder: str, token: int) -> bool:
        self._check_open()
        return await self._thread.run(primitives.release_lease, name, holder, token, time.time())

    async def record_fenced(self, name: str, token: int, key: str, value: bytes) -> bool:
        self._check_open()
        return await self._thread.run(primitives.record_fenced, name, token, key, value, time.time())

    async def read_fenced(self, name: str, key: str) -> bytes | None:
        self._check_open()
        return await self._thread.run(primitives.read_fenced, name, key)

    def _check_open(self) -> None:
        if self._closed:
            raise self._thread.errors.closed_error()
        if not self._opened:
            raise BackendError(f"{self.url} is not connected: call connect() first")

    async def _poll(self) -> None:
        """Read every awaited task's row whenever the database may have changed; resolve the ready ones."""
        try:
            while self._waiting:
                self._poke.clear()
                task_ids = json.dumps(list(self._waiting))
                version, found = await self._thread.run(_get_ready, task_ids, time.time())
                for task_id, raw in found:
                    self._resolve(task_id, raw)
                if self._waiting:
                    await self._watcher.wait(self._poke, version, None)
        except CeleriacError as exc:
            self._fail_waiters(exc)
        finally:
            self._poller = None

    def _resolve(self, task_id: str, raw: bytes) -> None:
        try:
            outcome: TaskMeta | CeleriacError = self.decode_meta(raw)
        except CeleriacError as exc:  # an undecodable record: tell its waiters, not everyone
            outcome = exc
        for future in self._waiting.pop(task_id, []):
            if future.done():
                continue
            if isinstance(outcome, CeleriacError):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _fail_waiters(self, exc: CeleriacError) -> None:
        waiting, self._waiting = self._waiting, {}
        for futures in waiting.values():
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
