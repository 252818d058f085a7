"""What every connection to the shared file does: WAL setup, write transactions, reading data_version."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


def configure_connection(conn: sqlite3.Connection) -> None:
    """WAL (readers never block the writer, several processes share the file) and synchronous=NORMAL
    (durable at each checkpoint, a commit costs no fsync)."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"cannot switch the database to WAL mode (journal_mode is {mode!r})")
    conn.execute("PRAGMA synchronous=NORMAL")


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: BEGIN IMMEDIATE takes the write lock up front, so a busy database makes us
    wait (busy_timeout) at the start instead of failing at the first write; rolls back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def read_data_version(conn: sqlite3.Connection) -> int:
    """The connection's ``PRAGMA data_version``: it changes when another connection commits."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])
