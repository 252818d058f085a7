"""Processes opening a brand-new SQLite broker file at the same moment (a worker and a client started together):
SQLite refuses some of them at once with "database is locked" (it does not wait its busy timeout for a journal
mode change or a lock upgrade that could deadlock); `prepare` retries, so every one of them opens the file."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from celeriac._sqlite.connection import prepare
from celeriac.backends.sqlite import SQL as BACKEND_SQL
from celeriac.transports.sqlite.ops import SQL as BROKER_SQL


def open_together(path: Path, schema: str, openers: int = 8) -> list[str]:
    errors: list[str] = []
    start = threading.Barrier(openers)

    def open_one() -> None:
        conn = sqlite3.connect(path, timeout=5, isolation_level=None)
        try:
            start.wait()
            prepare(conn, schema)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            errors.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=open_one) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_many_openers_of_a_new_file_all_succeed(tmp_path: Path) -> None:
    # Without the retry, 7 of 40 such rounds had a refused opener (2026-12-05, 8 threads).
    for round_ in range(40):
        assert open_together(tmp_path / f"broker-{round_}.db", BROKER_SQL["schema"]) == []
    assert open_together(tmp_path / "results.db", BACKEND_SQL["schema"]) == []


def test_a_lock_that_never_ends_is_still_reported(tmp_path: Path) -> None:
    path = tmp_path / "held.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")  # nobody else may even read
    other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    try:
        prepare(other, BROKER_SQL["schema"], patience=0.3)
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
    else:
        raise AssertionError("prepare returned while another connection held the file exclusively")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        other.close()
