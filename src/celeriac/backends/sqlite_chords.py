"""The SQLite result store's chord join: functions run on its connection's thread, one transaction each.

The promises are `celeriac.backends.base.ResultBackend.chord_part`'s: ``BEGIN IMMEDIATE`` holds the write lock
from the first read to the commit, so recording an outcome, counting and claiming the dispatch are one atomic
step across every process sharing the file. The fence is the primary key (group, index, task id): a
redelivered header task adds nothing. A claim is a token with a deadline; ``done`` replaces it once the body
was sent (kept as long as results are), so a late duplicate finds the chord finished.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from celeriac._sqlite.connection import write_transaction
from celeriac._sqlite.sql import load_queries

SQL = load_queries(__package__ or "celeriac.backends", "sqlite.sql")


def _each(conn: sqlite3.Connection, name: str, params: dict[str, Any]) -> None:
    for statement in SQL[name].split(";"):
        if statement.strip():
            conn.execute(statement, params)


def chord_start(conn: sqlite3.Connection, group_id: str, size: int, expires_at: float | None) -> None:
    """Record the size of a new run of chord ``group_id`` (a reapplied chord starts over)."""
    params = {"group_id": group_id, "size": size, "expires_at": expires_at}
    with write_transaction(conn):
        conn.execute(SQL["chord_start"], params)
        conn.execute(SQL["chord_forget_parts"], params)


def chord_part(
    conn: sqlite3.Connection,
    group_id: str,
    index: int,
    task_id: str,
    entry: bytes,
    size: int | None,
    expires_at: float | None,
    claim: tuple[str, float],
    now: float,
) -> tuple[str, list[bytes]]:
    """Record one outcome; ``(status, entries ordered by index when claimed)`` (see the module docstring)."""
    token, claim_until = claim
    params = {
        "group_id": group_id, "idx": index, "task_id": task_id, "entry": entry, "size": size,
        "expires_at": expires_at, "now": now, "token": token, "claim_until": claim_until,
    }  # fmt: skip
    with write_transaction(conn):
        _each(conn, "chord_drop_expired", params)  # an expired chord starts over
        row = conn.execute(SQL["chord_get"], params).fetchone()
        if row is not None and row[1] == "done":
            return "done", []
        conn.execute(SQL["chord_add"], params)
        conn.execute(SQL["chord_touch_parts"], params)
        conn.execute(SQL["chord_touch"], params)
        known = row[0] if row is not None and row[0] is not None else size
        if known is None or conn.execute(SQL["chord_count"], params).fetchone()[0] < int(known):
            return "waiting", []
        if row is not None and row[1] is not None and row[2] is not None and row[2] > now:
            return "busy", []
        conn.execute(SQL["chord_claim"], params)
        return "claimed", [bytes(r[0]) for r in conn.execute(SQL["chord_entries"], params)]


def chord_done(conn: sqlite3.Connection, group_id: str, token: str, expires_at: float | None) -> bool:
    """Mark the chord done under ``token`` and drop its outcomes; False when the claim was lost."""
    params = {"group_id": group_id, "token": token, "expires_at": expires_at}
    with write_transaction(conn):
        if conn.execute(SQL["chord_done"], params).rowcount != 1:
            return False
        conn.execute(SQL["chord_forget_parts"], params)
        return True


def save_group(conn: sqlite3.Connection, group_id: str, value: bytes, expires_at: float | None) -> None:
    with write_transaction(conn):
        conn.execute(SQL["group_save"], {"group_id": group_id, "value": value, "expires_at": expires_at})


def restore_group(conn: sqlite3.Connection, group_id: str, now: float) -> bytes | None:
    row = conn.execute(SQL["group_get"], {"group_id": group_id, "now": now}).fetchone()
    return None if row is None else bytes(row[0])


def forget_group(conn: sqlite3.Connection, group_id: str) -> None:
    with write_transaction(conn):
        conn.execute(SQL["group_forget"], {"group_id": group_id})


def purge_expired(conn: sqlite3.Connection, now: float) -> None:
    """Delete expired chords and saved groups."""
    with write_transaction(conn):
        _each(conn, "purge_expired_chords", {"now": now})
