"""Malformed rows and messages on the SQLite broker: no crash, no valid message lost, nothing leased after a stop.

Issue 10, item 6: a row with a column of the wrong type (written by something else than this broker: a script,
a restored backup, a bug) crash-looped the consumer (a text priority failed the sort, a text ``lease_until``
failed the next-hold lookup, a text column that is not UTF-8 failed the whole lease). Such a row is now
dead-lettered with the reason, and the consumer goes on. The corpus is generated with hypothesis: rows with one
to three columns replaced by values of the wrong type or range (NaN, infinities, huge ints, text, blobs, bad
UTF-8, JSON that is not an object), and well-formed rows whose message is not a task (bad JSON bodies, missing
headers), which are delivered and refused by the decoder (DecodeError), never a crash.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celeriac.errors import ContentDisallowed, DecodeError
from celeriac.protocol.codec import decode_task
from celeriac.protocol.message import Message
from celeriac.transports.base import Delivery, TransportOptions
from celeriac.transports.sqlite.transport import SQLiteTransport, database_path

ACCEPT = frozenset({"application/json"})
COLUMNS = ("priority", "body", "content_type", "content_encoding", "headers", "properties", "exchange", "routing_key",
           "deliveries", "lease_until")  # fmt: skip
STATS = {"examples": 0, "rows": 0, "refused_by_schema": 0}


def valid(n: int) -> Message:
    return Message(
        body=b'[[%d], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]' % n,
        headers={"lang": "py", "task": "tests.add", "id": f"valid-{n}"},
        properties={"correlation_id": f"valid-{n}", "reply_to": "", "delivery_mode": 2, "priority": 0},
    )


class Raw:
    """A value bound through an SQL expression (``CAST(? AS TEXT)`` of bytes: text that is not UTF-8)."""

    def __init__(self, expression: str, value: Any) -> None:
        self.expression, self.value = expression, value

    def __repr__(self) -> str:
        return f"Raw({self.expression!r}, {self.value!r})"


ODD = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=2**63, max_value=2**200).map(str),  # too big for an int column: stored as real / text
    st.floats(allow_nan=True, allow_infinity=True),  # NaN is stored as NULL: NOT NULL refuses the row
    st.text(max_size=20),
    st.binary(max_size=20),
    st.binary(min_size=1, max_size=20).map(lambda raw: Raw("CAST(? AS TEXT)", b"\xff" + raw)),
    st.sampled_from(["{}", "[]", "null", "1", '"x"', '{"a":', '{"task": 1}', '{"id": [1]}', "NaN", "\x00"]),
)
# A lease_until that is neither a hold of ours nor a hold that can end: no finite time between now and year 9999
# (such a row is a plain delayed message, valid, delivered when its time comes).
ODD_LEASE = st.one_of(
    st.floats(max_value=0) | st.floats(min_value=3e11) | st.just(math.inf) | st.just(-math.inf),
    st.text(max_size=10),
    st.binary(max_size=10),
    st.binary(min_size=1, max_size=10).map(lambda raw: Raw("CAST(? AS TEXT)", b"\xfe" + raw)),
)
BAD_BODIES = st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"", b"[", b"null", b"[1, 2]", b'[[], {}, {"chain": 5}]', b"\xff\xfe", b"NaN", b"1e999999"]),
)


@st.composite
def bad_row(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=3, unique=True))
    return {name: draw(ODD_LEASE if name == "lease_until" else ODD) for name in names}


@st.composite
def bad_message(draw: st.DrawFn) -> Message:
    headers = draw(st.sampled_from([{}, {"task": "tests.add"}, {"id": "x"}, {"task": 5, "id": None}]))
    return Message(body=draw(BAD_BODIES), content_type="application/json", content_encoding="utf-8", headers=headers)


def insert(path: str, queue: str, row: dict[str, Any]) -> bool:
    """Insert a row of ``queue`` with the columns of ``row`` replaced; False if the schema refuses it."""
    columns: dict[str, Any] = {
        "queue": queue, "priority": 0, "body": b"[[], {}, {}]", "content_type": "application/json",
        "content_encoding": "utf-8", "headers": "{}", "properties": "{}", "exchange": "", "routing_key": queue,
        "visible_at": time.time(), "lease_owner": None, "lease_until": None, "deliveries": 0,
    }  # fmt: skip
    columns.update(row)
    expressions = [value.expression if isinstance(value, Raw) else "?" for value in columns.values()]
    values = [value.value if isinstance(value, Raw) else value for value in columns.values()]
    sql = f"INSERT INTO messages ({', '.join(columns)}) VALUES ({', '.join(expressions)})"
    with sqlite3.connect(path) as conn:
        try:
            conn.execute(sql, values)
        except sqlite3.IntegrityError:  # NOT NULL: NaN and None are refused before they exist
            return False
    return True


def count(path: str, sql: str, *params: Any) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(sql, params).fetchone()[0])


async def drain(url: str, queue: str, bad: list[Message], rows: list[dict[str, Any]]) -> dict[str, int]:
    """Publish two valid messages among the bad ones, insert the bad rows, consume until the queue is empty
    (every delivery decoded as the worker would, then acked), stop; return what happened."""
    path = database_path(url)
    got: dict[str, int] = {"valid-1": 0, "valid-2": 0, "refused": 0, "inserted": 0}
    options = TransportOptions(visibility_timeout=30.0, polling_interval=0.05)
    async with SQLiteTransport(url, options) as transport:  # creates the schema
        await transport.publish(valid(1), queue)
        for message in bad:
            await transport.publish(message, queue)
        got["inserted"] = sum(insert(path, queue, row) for row in rows)
        await transport.publish(valid(2), queue)
    async with SQLiteTransport(url, options) as transport:  # a fresh start: connect reclaims malformed holds
        consumer = transport.consume([queue], prefetch=8)
        deadline = time.monotonic() + 10
        while count(path, "SELECT COUNT(*) FROM messages WHERE queue = ?", queue):
            assert time.monotonic() < deadline, "rows of the queue were neither delivered nor dead-lettered"
            try:
                delivery: Delivery = await asyncio.wait_for(anext(consumer), 0.5)
            except TimeoutError:
                continue
            try:
                task = decode_task(delivery.message, ACCEPT)
            except (DecodeError, ContentDisallowed):
                got["refused"] += 1
            else:
                if task.id in got:
                    got[task.id] += 1
            await delivery.ack()
        await consumer.cancel()
    return got


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(bad_row(), min_size=1, max_size=8), bad=st.lists(bad_message(), max_size=3))
def test_malformed_rows_are_dead_lettered_and_valid_messages_all_delivered(
    tmp_path: Path, rows: list[dict[str, Any]], bad: list[Message]
) -> None:
    STATS["examples"] += 1
    url = f"sqlite:///{tmp_path / 'corpus.db'}"
    queue = f"q{STATS['examples']}"
    got = asyncio.run(drain(url, queue, bad, rows))
    STATS["rows"] += len(rows) + len(bad)
    STATS["refused_by_schema"] += len(rows) - got["inserted"]
    assert got["valid-1"] == 1 and got["valid-2"] == 1, got  # no valid message lost (or duplicated)
    path = database_path(url)
    assert count(path, "SELECT COUNT(*) FROM messages WHERE lease_owner IS NOT NULL") == 0  # nothing leased
    dead = count(path, "SELECT COUNT(*) FROM dead_letters WHERE queue = ?", queue)
    assert dead + got["refused"] >= got["inserted"]  # each bad row is dead-lettered or delivered and refused


def test_the_corpus_is_big_enough() -> None:
    """Runs after the corpus (file order): at least 250 generated bad rows or messages went through."""
    print(f"\n[corpus] sqlite: {STATS}")
    assert STATS["examples"] == 0 or STATS["rows"] >= 250, STATS


async def test_each_kind_of_malformed_row_is_dead_lettered_with_its_reason(sqlite_url: str) -> None:
    path = database_path(sqlite_url)
    options = TransportOptions(visibility_timeout=30.0)
    async with SQLiteTransport(sqlite_url, options) as transport:
        await transport.publish(valid(1), "q")
        cases = {
            "priority is text": {"priority": "high"},
            "priority is real": {"priority": str(2**70)},
            "body is text": {"body": "text"},
            "headers is not UTF-8": {"headers": Raw("CAST(? AS TEXT)", b'{"a": "\xff"}')},
            "routing_key is not UTF-8": {"routing_key": Raw("CAST(? AS TEXT)", b"\xc3")},
            "deliveries is real": {"deliveries": 1.5},
            "lease_until is text": {"lease_until": "soon"},
            "lease_until is real inf": {"lease_until": math.inf},
            "lease_until is real 1e+300": {"lease_until": 1e300},
        }
        for row in cases.values():
            assert insert(path, "q", row)
        await transport.publish(valid(2), "q")
    async with SQLiteTransport(sqlite_url, options) as transport:
        consumer = transport.consume(["q"], prefetch=4)
        bodies = []
        for _ in range(2):
            delivery = await asyncio.wait_for(anext(consumer), 5)
            bodies.append(decode_task(delivery.message, ACCEPT).id)
            await delivery.ack()
        assert bodies == ["valid-1", "valid-2"]
        await consumer.cancel()
    with sqlite3.connect(path) as conn:
        reasons = [row[0] for row in conn.execute("SELECT reason FROM dead_letters ORDER BY message_id")]
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    assert len(reasons) == len(cases)
    for expected in cases:
        words = expected.split(" ")
        assert any(all(word in reason for word in words) for reason in reasons), (expected, reasons)


async def test_a_broadcast_row_that_is_not_utf8_is_skipped(sqlite_url: str) -> None:
    async with SQLiteTransport(sqlite_url, TransportOptions()) as transport:
        subscription = await transport.subscribe(["ch"])
        with sqlite3.connect(database_path(sqlite_url)) as conn:
            conn.execute(
                "INSERT INTO broadcasts (channel, body, content_type, content_encoding, headers, properties, "
                "created_at) VALUES ('ch', x'00', 'application/json', 'utf-8', CAST(x'7bff7d' AS TEXT), '{}', ?)",
                (time.time(),),
            )
        await transport.fanout("ch", Message(b"after"))
        channel, message = await asyncio.wait_for(anext(subscription), 5)
        assert (channel, message.body) == ("ch", b"after")
        await subscription.close()
