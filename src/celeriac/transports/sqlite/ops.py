"""What runs on the SQLite broker's thread: one function per operation, each given the connection first.

The transport and its consumers hand these to `SQLiteThread.run`; every write is one `write_transaction`.
The SQL itself is in ``sqlite.sql``.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from celeriac._sqlite.connection import prepare, read_data_version, write_transaction
from celeriac._sqlite.sql import load_queries
from celeriac.protocol.message import Message
from celeriac.protocol.serializers import json_dumps
from celeriac.transports.sqlite.owners import gone_owners

Row = tuple[Any, ...]

SQL = load_queries("celeriac.transports.sqlite", "sqlite.sql")


class LeasedRow(NamedTuple):
    """A row as the ``lease`` query returns it."""

    id: int
    queue: str
    priority: int
    body: bytes
    content_type: str
    content_encoding: str
    headers: str
    properties: str
    exchange: str
    routing_key: str
    deliveries: int
    problem: str | None = None  # why this row cannot be a message (a column of the wrong type), else None


@dataclass(frozen=True, slots=True)
class Leased:
    rows: list[LeasedRow]  # in delivery order
    dead: list[LeasedRow]  # moved to dead_letters instead: past max_deliveries
    malformed: list[LeasedRow]  # moved to dead_letters instead: ``problem`` says why
    version: int  # data_version read before looking
    next_hold_end: float | None  # when a lease or delay ends next: worth looking again then


def setup(conn: sqlite3.Connection) -> None:
    prepare(conn, SQL["schema"])


def _next_hold_end(conn: sqlite3.Connection) -> float | None:
    value = conn.execute(SQL["next_hold_end"]).fetchone()[0]
    return float(value) if value is not None else None


def _lease(
    conn: sqlite3.Connection,
    queues: tuple[str, ...],
    limit: int,
    owner: str,
    visibility_timeout: float,
    max_deliveries: int,
) -> Leased:
    version = read_data_version(conn)
    hold_end = _next_hold_end(conn)
    holds_ended = hold_end is not None and hold_end <= time.time()
    # Reads first: an idle consumer woken by some unrelated commit must not take the write lock.
    if not holds_ended and not any(conn.execute(SQL["has_ready"], (q,)).fetchone()[0] for q in queues):
        return Leased([], [], [], version, hold_end)
    rows: list[LeasedRow] = []
    dead: list[LeasedRow] = []
    malformed: list[LeasedRow] = []
    with write_transaction(conn):
        now = time.time()
        if holds_ended:
            conn.execute(SQL["end_holds"], {"now": now})
        for name in queues:
            wanted = limit - len(rows)
            if wanted <= 0:
                break
            params = {"owner": owner, "until": now + visibility_timeout, "queue": name, "limit": wanted}
            batch = [LeasedRow._make(row) for row in conn.execute(SQL["lease"], params)]
            if conn.text_factory is _lenient_text:
                batch = [_checked(row) for row in batch]
            if any(row.problem is not None for row in batch):
                malformed.extend(row for row in batch if row.problem is not None)
                batch = [row for row in batch if row.problem is None]
            batch.sort(key=lambda row: (-row.priority, row.id))
            rows.extend(batch)
        for row in malformed:
            params = {"owner": owner, "ids": json.dumps([row.id]), "reason": f"malformed row: {row.problem}"}
            conn.execute(SQL["dead_letter"], {**params, "now": now})
            conn.execute(SQL["ack"], params)
        if max_deliveries > 0:
            dead = [row for row in rows if row.deliveries > max_deliveries]
        if dead:
            ids = json.dumps([row.id for row in dead])
            reason = f"delivered more than max_deliveries={max_deliveries} times"
            conn.execute(SQL["dead_letter"], {"owner": owner, "ids": ids, "reason": reason, "now": now})
            conn.execute(SQL["ack"], {"owner": owner, "ids": ids})
            rows = [row for row in rows if row.deliveries <= max_deliveries]
    return Leased(rows, dead, malformed, version, _next_hold_end(conn))


def lease(
    conn: sqlite3.Connection,
    queues: tuple[str, ...],
    limit: int,
    owner: str,
    visibility_timeout: float,
    max_deliveries: int,
) -> Leased:
    """Lease up to ``limit`` ready rows of ``queues`` for ``owner`` (see `_lease`).

    A text column that is not valid UTF-8 makes sqlite3 fail the whole statement (and a retry would fail the
    same way, for ever): then the lease is made again with such text read leniently, and the rows holding it
    are dead-lettered. The fast path stays sqlite3's own decoding.
    """
    try:
        return _lease(conn, queues, limit, owner, visibility_timeout, max_deliveries)
    except sqlite3.OperationalError as exc:
        if "decode" not in str(exc):
            raise
    conn.text_factory = _lenient_text
    try:
        return _lease(conn, queues, limit, owner, visibility_timeout, max_deliveries)
    finally:
        conn.text_factory = str


_TEXT_COLUMNS = ("queue", "content_type", "content_encoding", "headers", "properties", "exchange", "routing_key")


def _lenient_text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return _BAD_UTF8 + raw.decode(errors="replace")


_BAD_UTF8 = "\x00<not utf-8>"  # marks a column read by _lenient_text that was not UTF-8


def _checked(row: LeasedRow) -> LeasedRow:
    """``row`` with its ``problem`` set if a text column was not UTF-8 (rows read by `_lenient_text`)."""
    if row.problem is None:
        for name in _TEXT_COLUMNS:
            value = getattr(row, name)
            if isinstance(value, str) and value.startswith(_BAD_UTF8):
                return row._replace(problem=f"{name} is not UTF-8")
    return row


def ack_batch(conn: sqlite3.Connection, acks: list[tuple[str, int]]) -> None:
    by_owner: dict[str, list[int]] = {}
    for owner, row_id in acks:
        by_owner.setdefault(owner, []).append(row_id)
    with write_transaction(conn):
        for owner, ids in by_owner.items():
            conn.execute(SQL["ack"], {"owner": owner, "ids": json.dumps(ids)})


def dead_letter(conn: sqlite3.Connection, owner: str, row_id: int, reason: str) -> None:
    params = {"owner": owner, "ids": json.dumps([row_id]), "reason": reason, "now": time.time()}
    with write_transaction(conn):
        conn.execute(SQL["dead_letter"], params)
        conn.execute(SQL["ack"], params)


def release(conn: sqlite3.Connection, releases: list[tuple[str, list[int], list[int]]]) -> None:
    """Give leases back: (owner, handed-out ids to requeue, never-handed-out ids to unlease)."""
    with write_transaction(conn):
        for owner, handed_out, unseen in releases:
            conn.execute(SQL["requeue"], {"owner": owner, "ids": json.dumps(handed_out)})
            conn.execute(SQL["unlease"], {"owner": owner, "ids": json.dumps(unseen)})


def renew(conn: sqlite3.Connection, leases: list[tuple[str, list[int]]], until: float) -> None:
    with write_transaction(conn):
        for owner, ids in leases:
            conn.execute(SQL["renew"], {"owner": owner, "ids": json.dumps(ids), "until": until})


def _insert(conn: sqlite3.Connection, sql: str, rows: list[Row]) -> None:
    with write_transaction(conn):
        conn.executemany(sql, rows)


def message_row(message: Message, queue: str, exchange: str, routing_key: str, not_before: float | None) -> Row:
    """The ``publish`` row of ``message`` for ``queue``, invisible until ``not_before`` when that is later."""
    now = time.time()
    delayed = not_before is not None and not_before > now
    visible_at = not_before if delayed and not_before is not None else now
    return (
        queue,
        message.priority,
        bytes(message.body),
        message.content_type,
        message.content_encoding,
        json_dumps(dict(message.headers)),
        json_dumps(dict(message.properties)),
        exchange,
        routing_key,
        visible_at,
        visible_at if delayed else None,
    )


def publish_batch(conn: sqlite3.Connection, rows: list[Row]) -> None:
    _insert(conn, SQL["publish"], rows)


def fanout_batch(conn: sqlite3.Connection, rows: list[Row]) -> None:
    _insert(conn, SQL["fanout"], rows)


def read_broadcasts(
    conn: sqlite3.Connection, channels: str, patterns: str, after: int, limit: int
) -> tuple[list[Row], int]:
    """Broadcast rows of the channels and patterns with id > ``after``, and the data_version read first. A row
    with text that is not UTF-8 is read leniently (see `lease`): its message fails to decode and is skipped."""
    version = read_data_version(conn)
    params = {"channels": channels, "patterns": patterns, "after": after, "limit": limit}
    try:
        return conn.execute(SQL["read_broadcasts"], params).fetchall(), version
    except sqlite3.OperationalError as exc:
        if "decode" not in str(exc):
            raise
    conn.text_factory = _lenient_text
    try:
        return conn.execute(SQL["read_broadcasts"], params).fetchall(), version
    finally:
        conn.text_factory = str


def add_listener(conn: sqlite3.Connection, owner: str, channels: str, patterns: str) -> int:
    """Record an open subscription (its owner id and JSON channel lists); its row id."""
    with write_transaction(conn):
        cursor = conn.execute(SQL["add_listener"], {"owner": owner, "channels": channels, "patterns": patterns})
    return int(cursor.lastrowid or 0)


def drop_listeners(conn: sqlite3.Connection, ids: list[int]) -> None:
    with write_transaction(conn):
        conn.execute(SQL["drop_listeners"], {"ids": json.dumps(ids)})


def count_listeners(conn: sqlite3.Connection, channel: str) -> int:
    """How many open subscriptions a broadcast on ``channel`` reaches; those of gone processes of this host are
    dropped (another host's are counted: nothing here can tell they are gone)."""
    rows = conn.execute(SQL["listeners_of"], {"channel": channel}).fetchall()
    owners = {row_id: bytes(owner).decode(errors="replace") for row_id, owner in rows}
    gone = set(gone_owners(owners.values(), socket.gethostname()))
    dead = [row_id for row_id, owner in owners.items() if owner in gone]
    if dead:
        drop_listeners(conn, dead)
    return len(owners) - len(dead)


def bind(conn: sqlite3.Connection, exchange: str, routing_key: str, queue: str) -> None:
    with write_transaction(conn):
        conn.execute(SQL["bind"], {"exchange": exchange, "routing_key": routing_key, "queue": queue})


def route(conn: sqlite3.Connection, exchange: str, routing_key: str) -> list[str]:
    rows = conn.execute(SQL["route"], {"exchange": exchange, "routing_key": routing_key}).fetchall()
    return [str(row[0]) for row in rows]


def delete_queue(conn: sqlite3.Connection, queue: str) -> None:
    with write_transaction(conn):
        conn.execute(SQL["unbind_queue"], {"queue": queue})
        conn.execute(SQL["delete_queue"], {"queue": queue})


def scalar(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


def purge(conn: sqlite3.Connection, name: str) -> int:
    with write_transaction(conn):
        ready = conn.execute(SQL["purge_ready"], {"queue": name}).rowcount
        delayed = conn.execute(SQL["purge_delayed"], {"queue": name}).rowcount
    return ready + delayed


def prune(conn: sqlite3.Connection, broadcasts_before: float, dead_before: float | None) -> None:
    with write_transaction(conn):
        conn.execute(SQL["prune_broadcasts"], {"before": broadcasts_before})
        if dead_before is not None:
            conn.execute(SQL["prune_dead_letters"], {"before": dead_before})


def reclaim(conn: sqlite3.Connection) -> tuple[list[str], list[tuple[int, str]]]:
    """Upkeep of holds nobody will end: give the leases of this host's gone processes back at once (their
    rows are ready now, not after the visibility timeout), and dead-letter rows whose ``lease_until`` is
    past year 9999, infinite, text or a blob (no lease or delay of ours).

    Returns (gone owners, dead-lettered (id, reason)).
    """
    host = socket.gethostname()
    owners = [bytes(row[0]).decode(errors="replace") for row in conn.execute(SQL["local_owners"], {"host": host})]
    gone = gone_owners(owners, host)
    bad = [
        (int(row[0]), f"malformed row: lease_until is {row[1]}" + ("" if row[2] is None else f" {row[2]!r}, past 9999"))
        for row in conn.execute(SQL["bad_holds"])
    ]
    if gone or bad:
        with write_transaction(conn):
            if gone:
                conn.execute(SQL["reclaim"], {"owners": json.dumps(gone)})
            now = time.time()
            for row_id, reason in bad:
                conn.execute(SQL["dead_letter_rows"], {"id": row_id, "reason": reason, "now": now})
                conn.execute(SQL["delete_row"], {"id": row_id})
    return gone, bad
