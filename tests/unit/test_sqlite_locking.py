"""The SQLite write lock taken in short pauses of our own (`celeriac._sqlite.connection.LockingConnection`), and
a poke from another process waking a waiter at once (`celeriac._sqlite.watch.ChangeWatcher`)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from celeriac._sqlite.connection import connect, read_data_version, write_transaction
from celeriac._sqlite.errors import ErrorMap
from celeriac._sqlite.thread import SQLiteThread
from celeriac._sqlite.wake import Wake
from celeriac._sqlite.watch import ChangeWatcher
from celeriac.errors import ConnectionLost, TransportClosed, TransportError


def _table(path: str) -> None:
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    conn.close()


def test_a_writer_gets_the_lock_soon_after_the_holder_commits(tmp_path: Path) -> None:
    path = str(tmp_path / "l.db")
    _table(path)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    conn = connect(path, patience=5.0)
    released = threading.Event()

    def release_soon() -> None:
        holder.execute("INSERT INTO t VALUES (1)")
        released.set()
        holder.execute("COMMIT")

    timer = threading.Timer(0.05, release_soon)
    timer.start()
    try:
        with write_transaction(conn):
            assert released.is_set()  # it waited for the holder instead of failing
            conn.execute("INSERT INTO t VALUES (2)")
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 2
        # Every other statement keeps SQLite's own busy timeout: the connection's patience, in ms.
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    finally:
        timer.join()
        holder.close()
        conn.close()


def test_a_lock_held_past_the_patience_is_the_busy_error(tmp_path: Path) -> None:
    path = str(tmp_path / "l.db")
    _table(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    conn = connect(path, patience=0.2)
    try:
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"), write_transaction(conn):
            pass
        assert time.monotonic() - started >= 0.2
        assert not conn.in_transaction
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 200
        holder.execute("ROLLBACK")
        with write_transaction(conn):  # free again: taken at the first try
            conn.execute("INSERT INTO t VALUES (3)")
    finally:
        holder.close()
        conn.close()


def test_a_non_busy_error_is_not_retried(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "l.db"), patience=5.0)
    try:
        conn.execute("BEGIN")
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="within a transaction"), write_transaction(conn):
            pass
        assert time.monotonic() - started < 1.0
    finally:
        conn.close()


async def test_a_poke_wakes_a_waiter_without_a_change_to_read(tmp_path: Path) -> None:
    """The waiter's baseline is the current data_version and nothing commits: only the poke can wake it, and it
    does (the poll underneath would wait for a change for ever)."""
    path = str(tmp_path / "w.db")
    _table(path)
    errors = ErrorMap("test db", ConnectionLost, TransportError, TransportClosed, 5.0)
    thread = SQLiteThread(path, "test-sqlite", errors)
    await thread.start(lambda conn: None)
    watcher = ChangeWatcher(thread, max_interval=3600.0)
    sender = Wake(path, lambda: None)
    try:
        baseline = await thread.run(read_data_version)
        woken = asyncio.Event()
        waiting = asyncio.create_task(watcher.wait(woken, baseline, timeout=60))
        sockets = Path(path + ".wake")
        async with asyncio.timeout(10):
            while not (sockets.exists() and any(sockets.iterdir())):
                await asyncio.sleep(0.005)  # the watcher binds its socket when the first waiter comes
        sender.poke_others()
        async with asyncio.timeout(10):
            await waiting
        assert woken.is_set()
    finally:
        sender.close()
        await watcher.close()
        await thread.stop()
