"""What only the SQLite broker promises: several processes on one file, lease expiry after a crash, lease
renewal while alive, the leases of a killed local process back at once, delayed rows, dead letters, cheap idle
waiting, a deleted or replaced file refused loudly, and its URL forms."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from celeriac.errors import ConfigurationError, ConnectionLost
from celeriac.protocol.message import Message
from celeriac.testing.contract import is_pending, next_delivery
from celeriac.transports.base import Delivery, TransportOptions
from celeriac.transports.sqlite.owners import is_gone, new_owner, pid_namespace, process_start
from celeriac.transports.sqlite.transport import SQLiteTransport, database_path

# A consumer process: argv = url, queue, mode[, visibility timeout (default 1 s)]. It prints "ready" once
# consuming, then
#   mode "work": acks every message (1 ms of "work" each), writing its body to stdout, until a b"stop" body;
#   mode "hold": takes 5 deliveries without acking, prints "held", and waits to be killed.
CHILD = """
import asyncio, sys
from celeriac.transports.base import TransportOptions
from celeriac.transports.sqlite.transport import SQLiteTransport

async def main(url, queue, mode, visibility="1.0"):
    async with SQLiteTransport(url, TransportOptions(visibility_timeout=float(visibility))) as transport:
        consumer = transport.consume([queue], prefetch=8 if mode == "work" else 5)
        print("ready", flush=True)
        if mode == "hold":
            for _ in range(5):
                await anext(consumer)
            print("held", flush=True)
            await asyncio.Event().wait()
        async for delivery in consumer:
            body = delivery.message.body.decode()
            if delivery.redelivered:
                print("REDELIVERED", body, flush=True)
            await asyncio.sleep(0.001)
            await delivery.ack()
            if body == "stop":
                return
            print(body, flush=True)

asyncio.run(main(*sys.argv[1:5]))
"""


@pytest.fixture
async def transport(sqlite_url: str) -> AsyncIterator[SQLiteTransport]:
    async with SQLiteTransport(sqlite_url, TransportOptions(visibility_timeout=1.0)) as opened:
        yield opened


async def start_child(tmp_path: Path, *args: str) -> asyncio.subprocess.Process:
    script = tmp_path / "consumer_child.py"
    script.write_text(CHILD)
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(script), *args, stdout=asyncio.subprocess.PIPE, env={**os.environ}
    )
    await expect_line(child, "ready")
    return child


async def expect_line(child: asyncio.subprocess.Process, expected: str, timeout: float = 20.0) -> None:
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), timeout)
    assert line.decode().strip() == expected, line


def dead_letters(url: str) -> list[tuple[str, str, int]]:
    with sqlite3.connect(database_path(url)) as conn:
        return conn.execute("SELECT CAST(body AS TEXT), reason, deliveries FROM dead_letters ORDER BY id").fetchall()


async def test_two_processes_share_the_work_without_duplicates(
    transport: SQLiteTransport, sqlite_url: str, queue_name: str, tmp_path: Path
) -> None:
    children = [await start_child(tmp_path, sqlite_url, queue_name, "work") for _ in range(2)]
    count = 600
    await asyncio.gather(*(transport.publish(Message(b"%d" % i), queue_name) for i in range(count)))
    for _ in children:  # priority -1: served only once every work message is taken
        await transport.publish(Message(b"stop", properties={"priority": -1}), queue_name)
    outputs = []
    for child in children:
        out, _ = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == 0
        outputs.append(out.decode().split())
    first, second = (set(lines) for lines in outputs)
    assert "REDELIVERED" not in first | second
    assert len(first) == len(outputs[0]) and len(second) == len(outputs[1]), "a process got a message twice"
    assert not first & second, "both processes got the same message"
    assert first | second == {str(i) for i in range(count)}
    assert first and second, "one process did all the work"
    assert await transport.size(queue_name) == 0


async def test_leases_of_a_killed_process_come_back_and_a_live_one_keeps_them(
    transport: SQLiteTransport, sqlite_url: str, queue_name: str, tmp_path: Path
) -> None:
    for i in range(5):
        await transport.publish(Message(b"%d" % i), queue_name)
    child = await start_child(tmp_path, sqlite_url, queue_name, "hold")
    await expect_line(child, "held")
    consumer = transport.consume([queue_name], prefetch=10)
    pending = asyncio.ensure_future(anext(consumer))
    # Twice the visibility timeout: the live holder renews its leases, so nothing comes back meanwhile.
    assert await is_pending(pending, 2.0), "a lease of a live consumer expired"
    child.send_signal(signal.SIGKILL)
    await child.wait()
    killed_at = time.monotonic()
    got: list[Delivery] = [await asyncio.wait_for(pending, 10)]
    got += [await next_delivery(consumer) for _ in range(4)]
    assert time.monotonic() - killed_at < 5
    assert sorted(d.message.body for d in got) == [b"0", b"1", b"2", b"3", b"4"]
    assert all(d.redelivered for d in got)
    for delivery in got:
        await delivery.ack()
    assert await transport.size(queue_name) == 0


async def test_delayed_rows_wait_for_their_time_in_time_order(transport: SQLiteTransport, queue_name: str) -> None:
    start = time.time()
    await transport.publish(Message(b"late"), queue_name, not_before=start + 0.6)
    await transport.publish(Message(b"early"), queue_name, not_before=start + 0.3)
    await transport.publish(Message(b"past"), queue_name, not_before=start - 10)  # due already: ready now
    assert await transport.size(queue_name) == 1
    consumer = transport.consume([queue_name], prefetch=5)
    arrivals = []
    for _ in range(3):
        delivery = await next_delivery(consumer)
        arrivals.append((delivery.message.body, time.time() - start))
        await delivery.ack()
    assert [body for body, _ in arrivals] == [b"past", b"early", b"late"]
    assert arrivals[1][1] >= 0.3 and arrivals[2][1] >= 0.6, arrivals
    assert arrivals[2][1] < 0.6 + 0.5, "a due row waited too long"


async def test_dead_letters_after_max_deliveries_and_on_reject(sqlite_url: str, queue_name: str) -> None:
    options = TransportOptions(visibility_timeout=1.0, max_deliveries=2)
    async with SQLiteTransport(sqlite_url, options) as transport:
        await transport.publish(Message(b"poison"), queue_name)
        consumer = transport.consume([queue_name], prefetch=1)
        for _ in range(2):
            delivery = await next_delivery(consumer)
            assert delivery.message.body == b"poison"
            await delivery.reject(requeue=True)
        await transport.publish(Message(b"unwanted"), queue_name)
        unwanted = await next_delivery(consumer)  # the third lease of "poison" dead-lettered it instead
        assert unwanted.message.body == b"unwanted"
        await unwanted.reject()
        assert await transport.size(queue_name) == 0
    assert dead_letters(sqlite_url) == [
        ("poison", "delivered more than max_deliveries=2 times", 3),
        ("unwanted", "rejected", 1),
    ]


async def test_cancel_gives_back_rows_never_handed_out(transport: SQLiteTransport, queue_name: str) -> None:
    for i in range(4):
        await transport.publish(Message(b"%d" % i), queue_name)
    first = transport.consume([queue_name], prefetch=4)
    taken = await next_delivery(first)  # the consumer leased all four, handed out one
    await first.cancel()
    assert await transport.size(queue_name) == 3
    second = transport.consume([queue_name], prefetch=4)
    rest = [await next_delivery(second) for _ in range(3)]
    assert not any(d.redelivered for d in rest), "rows never handed out are not redeliveries"
    for delivery in [taken, *rest]:
        await delivery.ack()


async def test_idle_consumer_uses_little_cpu_and_wakes_fast(
    transport: SQLiteTransport, sqlite_url: str, queue_name: str
) -> None:
    consumer = transport.consume([queue_name], prefetch=1)
    pending = asyncio.ensure_future(anext(consumer))
    cpu = time.process_time()
    assert await is_pending(pending, 1.0)
    assert time.process_time() - cpu < 0.2, "idle waiting burns CPU"
    async with SQLiteTransport(sqlite_url, TransportOptions()) as producer:  # another connection
        sent = time.monotonic()
        await producer.publish(Message(b"wake"), queue_name)
        delivery = await asyncio.wait_for(pending, 5)
    # An idle poll backs off to polling_interval (50 ms): a message from elsewhere waits at most about that.
    assert time.monotonic() - sent < 0.5
    await delivery.ack()


async def test_a_database_locked_too_long_is_connection_lost(sqlite_url: str, queue_name: str) -> None:
    options = TransportOptions(extra={"busy_timeout": 0.2})
    async with SQLiteTransport(sqlite_url, options) as transport:
        other = sqlite3.connect(database_path(sqlite_url), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        try:
            with pytest.raises(ConnectionLost, match=r"locked for more than 0\.2 s"):
                await transport.publish(Message(b"blocked"), queue_name)
        finally:
            other.execute("ROLLBACK")
            other.close()
        await transport.publish(Message(b"later"), queue_name)  # usable again once the lock is gone
        assert await transport.size(queue_name) == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite://", os.path.abspath("celeriac.db")),
        ("sqlite:///rel/x.db", os.path.abspath("rel/x.db")),
        ("sqlite:////abs/x.db", "/abs/x.db"),
    ],
)
def test_url_forms(url: str, expected: str) -> None:
    assert database_path(url) == expected


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://host/x.db", "redis://x"])
def test_unusable_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        database_path(url)


async def test_leases_of_a_killed_local_process_come_back_at_once_not_after_the_timeout(
    transport: SQLiteTransport, sqlite_url: str, queue_name: str, tmp_path: Path
) -> None:
    for i in range(5):
        await transport.publish(Message(b"%d" % i), queue_name)
    child = await start_child(tmp_path, sqlite_url, queue_name, "hold", "3600")
    await expect_line(child, "held")
    async with SQLiteTransport(sqlite_url, TransportOptions(visibility_timeout=3600.0)) as live:
        consumer = live.consume([queue_name], prefetch=10)
        assert await is_pending(asyncio.ensure_future(anext(consumer)), 0.5), "a live process's lease was taken"
    child.send_signal(signal.SIGKILL)
    await child.wait()
    killed_at = time.monotonic()
    async with SQLiteTransport(sqlite_url, TransportOptions(visibility_timeout=3600.0)) as restarted:
        consumer = restarted.consume([queue_name], prefetch=10)  # connect reclaimed the dead pid's leases
        got = [await next_delivery(consumer, 5.0) for _ in range(5)]
        assert time.monotonic() - killed_at < 3, "waited for the lease instead of reclaiming it"
        assert sorted(d.message.body for d in got) == [b"0", b"1", b"2", b"3", b"4"]
        assert all(d.redelivered for d in got)
        for delivery in got:
            await delivery.ack()


def test_owner_ids_judge_dead_and_reused_pids_of_this_host_only() -> None:
    host = socket.gethostname()
    me = new_owner()
    assert me.startswith(f"{host}/{os.getpid()}/") and not is_gone(me, host)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert is_gone(f"{host}/{dead.pid}/-/abc", host)
    assert is_gone(f"{host}/{dead.pid}/abc", host)  # an older id without the start time
    namespace = pid_namespace()
    assert is_gone(f"{host}/{dead.pid}/-:{namespace}/abc", host)
    if process_start(os.getpid()) is not None:  # a pid reused by a younger process is not the owner
        assert is_gone(f"{host}/{os.getpid()}/1:{namespace}/abc", host)
        assert is_gone(f"{host}/{os.getpid()}/1/abc", host)
    assert not is_gone(f"{host}/{dead.pid}/-:1{namespace}/abc", host)  # another pid namespace's: not judged
    assert not is_gone(f"other-{host}/{dead.pid}/-/abc", host)  # another host's: only its lease expiry tells
    assert not is_gone("garbage", host) and not is_gone(f"{host}/x/-/abc", host)


async def test_a_deleted_broker_file_is_connection_lost_naming_it(
    transport: SQLiteTransport, sqlite_url: str, queue_name: str
) -> None:
    consumer = transport.consume([queue_name], prefetch=4)
    pending = asyncio.ensure_future(anext(consumer))
    assert await is_pending(pending, 0.2)
    path = database_path(sqlite_url)
    os.unlink(path)
    with pytest.raises(ConnectionLost, match=f"{path}: the database file was deleted"):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(ConnectionLost):
        await transport.publish(Message(b"into the void"), queue_name)  # refused, not written to the lost file
    async with SQLiteTransport(sqlite_url, TransportOptions()) as reopened:  # a reconnect creates it anew
        await reopened.publish(Message(b"x"), queue_name)
        assert await reopened.size(queue_name) == 1


async def test_a_replaced_broker_file_is_connection_lost(sqlite_url: str, queue_name: str, tmp_path: Path) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    async with SQLiteTransport(other, TransportOptions()) as transport:
        await transport.publish(Message(b"in the new file"), queue_name)
    async with SQLiteTransport(sqlite_url, TransportOptions()) as transport:
        await transport.publish(Message(b"in the old file"), queue_name)
        os.replace(database_path(other), database_path(sqlite_url))
        await asyncio.sleep(1.1)  # the inode is compared at most once a second
        with pytest.raises(ConnectionLost, match="replaced"):
            await transport.size(queue_name)
    async with SQLiteTransport(sqlite_url, TransportOptions()) as transport:
        consumer = transport.consume([queue_name], prefetch=1)
        delivery = await next_delivery(consumer)
        assert delivery.message.body == b"in the new file"
        await delivery.ack()


async def test_a_broadcast_counts_its_live_receivers(transport: SQLiteTransport, sqlite_url: str) -> None:
    """``fanout_counted`` (mingle ends with the last reply) counts open subscriptions of the channel, wildcards
    included; a closed one, or one whose process is gone, no longer counts (and its row is dropped)."""
    message = Message(b"{}", "application/json", "utf-8", {}, {})
    exact = await transport.subscribe(["box.pidbox"])
    wild = await transport.subscribe(["box.*"])
    other = await transport.subscribe(["elsewhere"])
    assert await transport.fanout_counted("box.pidbox", message) == 2
    await wild.close()
    assert await transport.fanout_counted("box.pidbox", message) == 1
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    ghost = f"{socket.gethostname()}/{int(dead.stdout)}/-:{pid_namespace()}/gone"
    with sqlite3.connect(database_path(sqlite_url)) as db:
        db.execute("INSERT INTO listeners (owner, channels, patterns) VALUES (?, '[\"box.pidbox\"]', '[]')", (ghost,))
    assert await transport.fanout_counted("box.pidbox", message) == 1
    with sqlite3.connect(database_path(sqlite_url)) as db:
        assert db.execute("SELECT COUNT(*) FROM listeners WHERE owner = ?", (ghost,)).fetchone() == (0,)
    await exact.close()
    await other.close()
    assert await transport.fanout_counted("box.pidbox", message) == 0
