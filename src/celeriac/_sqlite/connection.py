"""What every connection to the shared file does: WAL setup, write transactions, reading data_version."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator

#: How long `prepare` keeps retrying a database another connection is creating at the same moment.
PREPARE_PATIENCE = 30.0
#: The first and the longest pause between two tries for the write lock (`LockingConnection`).
FIRST_LOCK_PAUSE = 0.00002
MAX_LOCK_PAUSE = 0.001
SQLITE_BUSY = 5


class LockingConnection(sqlite3.Connection):
    """A connection whose write transactions wait for the write lock in short pauses of their own.

    SQLite's own busy handler sleeps 1 ms at its first retry, then 2, 5, 10 ms...; the lock it waits for is
    held ~0.1 ms by a commit of another connection (the worker's acks and its result store, a client's send),
    so a collision cost a round trip a whole millisecond. `write_transaction` turns the handler off for its
    ``BEGIN IMMEDIATE`` and retries after 20 us, doubling up to 1 ms, for ``lock_patience`` seconds, the
    connection's busy timeout; every other statement keeps SQLite's handler with that timeout.
    """

    lock_patience: float = 5.0


def connect(path: str, patience: float, same_thread: bool = True) -> LockingConnection:
    """A `LockingConnection` to ``path`` in autocommit mode, waiting up to ``patience`` s for a lock
    (``same_thread=False``: usable from any thread, serialised by its owner)."""
    conn = sqlite3.connect(
        path,
        timeout=patience,
        isolation_level=None,
        cached_statements=64,
        factory=LockingConnection,
        check_same_thread=same_thread,
    )
    conn.lock_patience = patience
    return conn


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
    if isinstance(conn, LockingConnection):
        _begin_immediate(conn)
    else:
        conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _begin_immediate(conn: LockingConnection) -> None:
    """``BEGIN IMMEDIATE``, retried in short pauses while another connection holds the write lock."""
    patience = conn.lock_patience
    conn.execute("PRAGMA busy_timeout=0")
    try:
        pause, deadline = FIRST_LOCK_PAUSE, None
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF != SQLITE_BUSY:
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + patience
                elif now >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, MAX_LOCK_PAUSE)
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(patience * 1000)}")


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
