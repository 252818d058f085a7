"""Sync sends from the caller's own thread on the embedded SQLite broker (`celeriac.transports.sqlite.direct`):
what they insert, how a consumer hears of them, and the file, fork and close cases the transport's own thread
guards too."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import App
from celeriac._portal import portal
from celeriac._sqlite.config import database_path
from celeriac._sqlite.wake import Wake
from celeriac.errors import ConnectionLost, TransportClosed
from celeriac.protocol.codec import decode_task
from celeriac.protocol.message import Message
from celeriac.transports.base import TransportOptions
from celeriac.transports.sqlite.rows import row_message
from celeriac.transports.sqlite.transport import SQLiteTransport
from threaded_sends import portal_publishers, send_from_threads

JSON_ONLY = frozenset({"application/json"})


def queued(url: str, queue: str = "celery") -> list[Any]:
    """The task messages in ``queue``, in insertion order."""
    with sqlite3.connect(database_path(url)) as conn:
        rows = conn.execute(
            "SELECT body, content_type, content_encoding, headers, properties FROM messages WHERE queue = ? "
            "ORDER BY id",
            (queue,),
        ).fetchall()
    conn.close()
    return [decode_task(row_message(*row), JSON_ONLY) for row in rows]


@pytest.fixture
def app(sqlite_url: str) -> Iterator[App]:
    made = App("direct-sqlite", broker=sqlite_url, backend=sqlite_url)
    yield made
    made.close()


def test_sync_sends_insert_from_each_callers_thread(app: App, sqlite_url: str) -> None:
    add, sent, count = send_from_threads(app)
    assert count == 3  # one connection per sending thread
    messages = queued(sqlite_url)
    assert {m.id: (m.args[0], m.kwargs.get("y", 0)) for m in messages} == sent
    assert {m.priority for m in messages} == {0, 3}
    # countdown: the broker keeps the row invisible until then, which the loop's publish asks for
    later = add.apply_async((1,), countdown=60)
    with sqlite3.connect(database_path(sqlite_url)) as conn:
        (visible_at,) = conn.execute("SELECT visible_at FROM messages ORDER BY id DESC LIMIT 1").fetchone()
    conn.close()
    assert queued(sqlite_url)[-1].id == later.id and visible_at > time.time() + 30


async def test_a_direct_insert_pokes_the_waiting_processes_and_is_delivered(sqlite_url: str, queue_name: str) -> None:
    async with SQLiteTransport(sqlite_url, TransportOptions()) as transport:
        await transport.declare(queue_name)
        consumer = transport.consume([queue_name], prefetch=4)
        publisher = transport.blocking_publisher()
        poked = asyncio.Event()
        listener = Wake(database_path(sqlite_url), poked.set)  # another process waiting on the file
        listener.listen(asyncio.get_running_loop())
        try:
            waiting = asyncio.ensure_future(consumer.__anext__())
            await asyncio.to_thread(publisher.publish, Message(b"[[], {}, {}]", headers={"id": "x"}), queue_name)
            async with asyncio.timeout(20):
                await poked.wait()  # not left to its data_version poll
                delivery = await waiting
            assert delivery.message.headers["id"] == "x"
            await delivery.ack()
        finally:
            listener.close()
            publisher.close()
            await consumer.cancel()
        with pytest.raises(TransportClosed):
            publisher.publish(Message(b"late"), queue_name)


def test_a_replaced_file_is_connection_lost_once_then_the_new_file_is_used(sqlite_url: str, tmp_path: Path) -> None:
    path = database_path(sqlite_url)
    transport = SQLiteTransport(sqlite_url, TransportOptions())
    portal.run(transport.connect())
    publisher = transport.blocking_publisher()
    try:
        publisher.publish(Message(b"one"), "q")
        publisher._next_check = 0.0  # check the file at the next publish
        old_wal = os.stat(path + "-wal").st_ino
        os.replace(_fresh_db(tmp_path), path)
        with pytest.raises(ConnectionLost, match="replaced"):
            publisher.publish(Message(b"two"), "q")
        # The lost file's WAL is removed: the file next opened at the path would take it for its own.
        assert not os.path.exists(path + "-wal") or os.stat(path + "-wal").st_ino != old_wal
        publisher.publish(Message(b"three"), "q")  # the file now at the path: tables created, row in it
        with sqlite3.connect(path) as conn:
            bodies = [row[0] for row in conn.execute("SELECT body FROM messages ORDER BY id")]
        conn.close()
        assert bodies == [b"three"]
    finally:
        publisher.close()
        portal.run(transport.close())


def _fresh_db(tmp_path: Path) -> Path:
    fresh = tmp_path / "fresh.db"
    sqlite3.connect(fresh).close()
    return fresh


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(sqlite_url: str) -> None:
    transport = SQLiteTransport(sqlite_url, TransportOptions())
    portal.run(transport.connect())
    publisher = transport.blocking_publisher()
    try:
        publisher.publish(Message(b"parent"), "q")
        pid = os.fork()
        if pid == 0:  # the child: publish on a connection of its own, leave without closing the parent's
            code = 0
            try:
                publisher.publish(Message(b"child"), "q")
            except BaseException:
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        publisher.publish(Message(b"parent again"), "q")  # the parent's connection still works
        with sqlite3.connect(database_path(sqlite_url)) as conn:
            bodies = [row[0] for row in conn.execute("SELECT body FROM messages ORDER BY id")]
        conn.close()
        assert bodies == [b"parent", b"child", b"parent again"]
    finally:
        publisher.close()
        portal.run(transport.close())


def test_closing_the_app_closes_the_threads_connections_and_sends_go_on(app: App, sqlite_url: str) -> None:
    task = app.task(name="d.noop", ignore_result=True)(lambda: None)
    task.delay()
    task.delay()
    (publisher,) = portal_publishers(app)
    app.close()
    with pytest.raises(TransportClosed):
        publisher.publish(Message(b"late"), "celery")
    task.delay()  # a new transport, through the loop, then directly again
    task.delay()
    assert len(queued(sqlite_url)) == 4
