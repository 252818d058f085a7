"""The SQLite result store's join and lease: functions run on its connection's thread, one transaction each.

The promises are `celeriac.backends.base`'s (`ResultBackend.join_add`, `ResultBackend.acquire_lease` and the
rest); atomicity comes from ``BEGIN IMMEDIATE``: every function here holds the database's write lock from its
first read to its commit, so no other connection or process interleaves. Times are Unix times of this machine,
which every process sharing the file shares.
"""

from __future__ import annotations

import sqlite3

from celeriac._sqlite.connection import write_transaction
from celeriac._sqlite.sql import load_queries

SQL = load_queries(__package__ or "celeriac.backends", "sqlite.sql")


def join_add(
    conn: sqlite3.Connection, group_id: str, index: int, meta: bytes, size: int, expires_at: float | None, now: float
) -> list[bytes] | None:
    """Record member ``index``; every record, ordered by index, when this add completed the set, else None."""
    params = {"group_id": group_id, "idx": index, "meta": meta, "expires_at": expires_at, "now": now}
    with write_transaction(conn):
        conn.execute(SQL["join_drop_expired"], params)  # an expired join starts over
        added = conn.execute(SQL["join_add"], params).rowcount == 1
        conn.execute(SQL["join_touch"], params)
        if not added or conn.execute(SQL["join_count"], params).fetchone()[0] != size:
            return None
        return [bytes(row[0]) for row in conn.execute(SQL["join_all"], params)]


def acquire_lease(conn: sqlite3.Connection, name: str, holder: str, ttl: float, now: float) -> int | None:
    """The lease's token for ``holder`` (a new one when it changes hands), or None while another holds it."""
    with write_transaction(conn):
        row = conn.execute(SQL["lease_get"], {"name": name}).fetchone()
        token = 1
        if row is not None:
            current, last_token, expires_at = row
            if current is not None and expires_at > now:
                if current != holder:
                    return None
                token = int(last_token)  # held already: extended, same token
            else:
                token = int(last_token) + 1
        conn.execute(SQL["lease_set"], {"name": name, "holder": holder, "token": token, "expires_at": now + ttl})
        return token


def renew_lease(conn: sqlite3.Connection, name: str, holder: str, token: int, ttl: float, now: float) -> bool:
    params = {"name": name, "holder": holder, "token": token, "expires_at": now + ttl, "now": now}
    with write_transaction(conn):
        return conn.execute(SQL["lease_renew"], params).rowcount == 1


def release_lease(conn: sqlite3.Connection, name: str, holder: str, token: int, now: float) -> bool:
    params = {"name": name, "holder": holder, "token": token, "now": now}
    with write_transaction(conn):
        return conn.execute(SQL["lease_release"], params).rowcount == 1


def record_fenced(conn: sqlite3.Connection, name: str, token: int, key: str, value: bytes, now: float) -> bool:
    """Write ``key`` only if ``token`` is the live token of lease ``name``; whether it was written."""
    params = {"name": name, "token": token, "key": key, "value": value, "now": now}
    with write_transaction(conn):
        if conn.execute(SQL["lease_live"], params).fetchone() is None:
            return False
        conn.execute(SQL["fenced_set"], params)
        return True


def read_fenced(conn: sqlite3.Connection, name: str, key: str) -> bytes | None:
    row = conn.execute(SQL["fenced_get"], {"name": name, "key": key}).fetchone()
    return None if row is None else bytes(row[0])


def purge_expired(conn: sqlite3.Connection, now: float) -> None:
    """Delete expired results and joins."""
    with write_transaction(conn):
        conn.execute(SQL["purge_expired"], {"now": now})
        conn.execute(SQL["purge_expired_joins"], {"now": now})
