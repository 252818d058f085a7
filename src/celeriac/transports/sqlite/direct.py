"""The SQLite broker's blocking publisher: one thread's inserts on a connection of its own.

sqlite3 blocks anyway, so a sync send need not hop to the transport's thread and back (two thread wake-ups and
the portal's, ~0.2 ms of a round trip on the 2-core benchmark VM): the calling thread inserts the row itself, in
a write transaction of its own, and pokes the processes waiting on the file (`celeriac._sqlite.wake`), this one
included, so a consumer sees it as soon as a row the transport inserted.

What the transport's thread guards, this connection guards the same way: it is used by one thread at a time
(a lock, since `close` may come from another thread), never by a forked child (a child opens its own), and at
most every `FILE_CHECK_EVERY` s it checks that the path is still the file it opened (a deleted or replaced file
raises `ConnectionLost` once, before the insert, and the next publish opens, or creates, the file now at the
path, as a reconnect of the transport does).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time

from celeriac._sqlite.connection import LockingConnection, connect
from celeriac._sqlite.errors import ErrorMap
from celeriac._sqlite.identity import FileIdentity
from celeriac._sqlite.wake import Wake
from celeriac.errors import ConnectionLost, TransportClosed
from celeriac.protocol.message import Message
from celeriac.transports.base import BlockingPublisher
from celeriac.transports.sqlite import ops


class SQLiteBlockingPublisher(BlockingPublisher):
    """Inserts rows for the default exchange from the calling thread, as `SQLiteTransport.publish` does."""

    def __init__(self, path: str, errors: ErrorMap, check_file_every: float) -> None:
        self._path = path
        self._errors = errors
        self._check_every = check_file_every
        self._lock = threading.Lock()
        self._conn: LockingConnection | None = None
        self._pid = 0
        self._identity: FileIdentity | None = None
        self._next_check = 0.0
        self._wake = Wake(path, _nothing)  # sends only: never listens
        self._closed = False

    def publish(self, message: Message, queue: str) -> None:
        """Insert the row and commit; returns once the commit is done (see `BlockingPublisher`)."""
        row = ops.message_row(message, queue, "", queue, None)
        with self._lock:
            try:
                if self._closed:
                    raise TransportClosed(f"{self._errors.where} is closed")
                try:
                    ops.publish_batch(self._connection(), [row])
                except sqlite3.Error as exc:
                    raise self._errors.translate(exc) from exc
                self._wake.poke_others()
            finally:
                if self._closed:  # closed meanwhile, by another thread that did not wait for this publish
                    self._release()

    def close(self) -> None:
        """Close the connection (see `BlockingPublisher.close`); never waits for a publish in flight, which
        closes it when it ends."""
        self._closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._lock.release()

    def _release(self) -> None:
        self._drop()
        self._wake.close()

    def _connection(self) -> LockingConnection:
        """This process's connection, opened on first use; raises `ConnectionLost` when the file is gone."""
        conn = self._conn
        if conn is not None and self._pid != os.getpid():
            conn = self._conn = None  # a forked child: the parent's connection is the parent's (never closed here)
            self._wake = Wake(self._path, _nothing)
        if conn is None:
            conn = connect(self._path, self._errors.busy_timeout, same_thread=False)
            try:
                ops.setup(conn)  # WAL, and the tables when the file at the path is a new one
            except BaseException:
                conn.close()
                raise
            self._conn, self._pid = conn, os.getpid()
            self._identity = FileIdentity(self._path)
            self._next_check = time.monotonic() + self._check_every
        elif time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self._check_every
            self._check_file()
        return conn

    def _check_file(self) -> None:
        """As the transport's thread checks its file (`FileIdentity`): a lost file's connection is closed and the
        WAL files it leaves removed, or the file next opened at the path would take them for its own."""
        assert self._identity is not None and self._conn is not None
        gone = self._identity.lost()
        if gone is not None:
            conn, self._conn = self._conn, None
            self._identity.abandon(conn, self._errors.where, gone)
            raise ConnectionLost(f"{self._errors.where}: the database file {gone}; message not sent")

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.close()


def _nothing() -> None:
    """A sending-only `Wake` is never poked."""
