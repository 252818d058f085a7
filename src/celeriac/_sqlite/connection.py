"""What every connection to the shared file does: WAL setup, write transactions, reading data_version."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator

#: How long `prepare` keeps retrying a database another connection is creating at the same moment.
PREPARE_PATIENCE = 30.0


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


def prepare(conn: sqlite3.Connection, schema: str, patience: float = PREPARE_PATIENCE) -> None:
    """`configure_connection` and create ``schema`` (idempotent ``CREATE ... IF NOT EXISTS``), retried while the
    file is locked: two processes opening a new file at once (a worker and a client started together) can be
    refused at once with "database is locked" (SQLite answers a lock upgrade that could deadlock, or a change of
    journal mode, without waiting for its busy timeout)."""
    deadline = time.monotonic() + patience
    pause = 0.01
    while True:
        try:
            configure_connection(conn)
            conn.executescript(schema)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
