"""What only the Redis transport and backend promise, checked against a real Redis.

Each test works under its own ``global_keyprefix`` (and the run's own database), so visibility-timeout
sweeps and ``unacked`` bookkeeping never touch another test's or another run's keys; every key under the
prefix is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection

from celeriac._redis import compat, heartbeat
from celeriac._redis.client import make_client, raw_connection
from celeriac._redis.urls import redact
from celeriac.backends.base import BackendOptions, TaskMeta
from celeriac.backends.redis.backend import RedisBackend
from celeriac.errors import ConfigurationError, ConnectionLost, TimeoutError, TransportClosed
from celeriac.protocol.message import Message
from celeriac.transports.base import TransportOptions
from celeriac.transports.redis.delivery import RedisDelivery
from celeriac.transports.redis.keys import RedisKeys
from celeriac.transports.redis.transport import RedisTransport
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.redis


async def eventually(predicate: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        await asyncio.sleep(0.02)


def message(n: int = 0, priority: int = 0, **headers: Any) -> Message:
    return Message(
        body=b'[[%d], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]' % n,
        headers={"lang": "py", "task": "tests.add", "id": f"task-{n}", **headers},
        properties={"correlation_id": f"task-{n}", "reply_to": "", "delivery_mode": 2, "priority": priority},
    )


def count_fetches(transport: RedisTransport) -> list[int]:
    """Count the consumer's own fetch calls from now on: ``[n]``, updated in place."""
    fetches = [0]
    real_fetch = transport.ops.fetch

    async def counting_fetch(*args: Any, **kwargs: Any) -> Any:
        fetches[0] += 1
        return await real_fetch(*args, **kwargs)

    transport.ops.fetch = counting_fetch  # type: ignore[method-assign]
    return fetches


async def kill_clients(raw: aioredis.Redis, name: str, kind: str = "normal") -> int:
    """CLIENT KILL every connection named ``name`` of ``kind`` (only our own: the name is unique)."""
    killed = 0
    for entry in await raw.client_list(_type=kind):
        if entry.get("name") == name:
            killed += await raw.client_kill_filter(_id=entry["id"])
    return killed


# -- names ---------------------------------------------------------------------------------------------------


def test_key_names_are_kombus() -> None:
    keys = RedisKeys(prefix="p:", db=15)
    assert keys.queue_lists("celery") == ["p:celery", "p:celery\x06\x163", "p:celery\x06\x166", "p:celery\x06\x169"]
    assert [keys.step_for(p) for p in (-1, 0, 2, 3, 7, 9, 255)] == [0, 0, 0, 3, 6, 9, 9]
    assert keys.binding("celery") == "p:_kombu.binding.celery"
    assert keys.binding_permanent("celery") == "p:_kombu.binding_permanent.celery"
    assert (keys.unacked, keys.unacked_index, keys.unacked_mutex) == ("p:unacked", "p:unacked_index", "p:unacked_mutex")
    assert keys.fanout_channel("celeryev/worker.heartbeat") == "p:/15.celeryev/worker.heartbeat"
    assert keys.fanout_channel("celery.pidbox") == "p:/15.celery.pidbox"
    assert keys.fanout_subscription("celeryev/#") == ("p:/15.celeryev/*", True)
    assert keys.fanout_subscription("celery.pidbox") == ("p:/15.celery.pidbox", False)
    assert keys.channel_name("p:/15.celeryev/task.multi") == "celeryev/task.multi"
    assert keys.dead_letter("celery") == "p:celery.dead"


def test_url_is_redacted() -> None:
    assert redact("redis://:s3cret@host:6379/1") == "redis://:***@host:6379/1"
    assert redact("rediss://user:s3cret@host/0?ssl_cert_reqs=none") == "rediss://user:***@host/0?ssl_cert_reqs=none"
    assert redact("redis://host/0?password=s3cret") == "redis://host/0?password=***"
    t = RedisTransport("redis://:s3cret@127.0.0.1:1/3")
    assert "s3cret" not in t.url and t.settings.keys.db == 3


def test_socket_url_selects_database() -> None:
    t = RedisTransport("redis+socket:///tmp/no-such.sock?virtual_host=7")
    assert t.settings.keys.db == 7 and t.url.startswith("redis+socket://")


def test_timely_writes_are_gated_on_python_311() -> None:
    """`compat.connection_class` swaps in the named TimelyWrite subclasses on Python 3.11 only, never another class."""
    timely = sys.version_info < (3, 12)
    assert compat.connection_class(Connection) is (compat.TimelyConnection if timely else Connection)
    assert compat.connection_class(SSLConnection) is (compat.TimelySSLConnection if timely else SSLConnection)

    class Custom(Connection):
        pass

    assert compat.connection_class(Custom) is Custom


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="only Python 3.11's asyncio.wait_for needs a task")
async def test_commands_are_written_in_the_callers_task(redis_url: str) -> None:
    """redis-py's wait_for around a write would put it in a task of its own, sent one loop iteration late."""
    client = make_client(redis_url, {}, socket_timeout=5.0)
    try:
        assert client.connection_pool.connection_class.__name__ == "TimelyConnection"
        for scheme_url in ("rediss://127.0.0.1:1/0", "redis+socket:///tmp/no-such.sock"):
            name = make_client(scheme_url, {}).connection_pool.connection_class.__name__
            assert name in ("TimelySSLConnection", "TimelyUnixDomainSocketConnection")
        await client.ping()  # connects (redis-py's own path), then writes through ours
        writers: list[asyncio.Task[Any] | None] = []
        connection = await client.connection_pool.get_connection()
        try:
            writer = connection._writer
            assert writer is not None
            original = writer.writelines

            def spy(data: Any) -> None:
                writers.append(asyncio.current_task())
                original(data)

            writer.writelines = spy  # type: ignore[method-assign]
            await connection.send_command("PING")
            assert await connection.read_response() in (b"PONG", "PONG")
        finally:
            await client.connection_pool.release(connection)
        assert writers == [asyncio.current_task()]
    finally:
        await client.aclose()


async def test_connections_keep_alive_with_short_intervals(redis_url: str) -> None:
    """Every TCP connection, pooled or pub/sub, probes an idle peer early (issue 10 item 7: NAT idle timeouts)."""
    client = make_client(redis_url, {})
    try:
        pooled = await client.connection_pool.get_connection()
        subscriber = raw_connection(client)
        await subscriber.connect()  # type: ignore[no-untyped-call]
        try:
            for connection in (pooled, subscriber):
                assert connection._writer is not None
                sock = connection._writer.transport.get_extra_info("socket")
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                if hasattr(socket, "TCP_KEEPIDLE"):
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
                if hasattr(socket, "TCP_KEEPCNT"):
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        finally:
            await client.connection_pool.release(pooled)
            await subscriber.disconnect()
    finally:
        await client.aclose()


async def test_pubsub_ping_interval_option(redis_url: str) -> None:
    assert heartbeat.interval_of(raw_connection(make_client(redis_url, {}))) == heartbeat.DEFAULT_INTERVAL
    assert heartbeat.interval_of(raw_connection(make_client(redis_url, {"pubsub_ping_interval": 0.5}))) == 0.5
    with pytest.raises(ConfigurationError, match="pubsub_ping_interval"):
        make_client(redis_url, {"pubsub_ping_interval": -1})
    with pytest.raises(ConfigurationError, match="pubsub_ping_interval"):
        RedisTransport(redis_url, TransportOptions(extra={"pubsub_ping_interval": "often"}))
    assert heartbeat.is_pong([b"pong", b""]) and heartbeat.is_pong(b"PONG") and not heartbeat.is_pong([b"message"])


# -- queues --------------------------------------------------------------------------------------------------


async def test_consume_ack_bookkeeping(transport: RedisTransport, raw: aioredis.Redis, queue_name: str) -> None:
    keys = transport.settings.keys
    await transport.declare(queue_name)
    assert await raw.smembers(keys.binding(queue_name)) == {f"{queue_name}\x06\x16\x06\x16{queue_name}".encode()}
    await transport.publish(message(1, custom="x"), queue_name)
    assert await transport.size(queue_name) == 1

    consumer = transport.consume([queue_name], prefetch=4)
    delivery = await anext(consumer)
    assert delivery.message.headers["custom"] == "x"
    assert (delivery.queue, delivery.exchange, delivery.routing_key) == (queue_name, "", queue_name)
    assert not delivery.redelivered
    tag = delivery.delivery_tag
    assert await raw.hexists(keys.unacked, tag)
    assert await raw.zscore(keys.unacked_index, tag) == pytest.approx(time.time(), abs=5)
    assert await raw.get(keys.delivery_count(tag)) == b"1"
    assert await raw.ttl(keys.delivery_count(tag)) > 0
    assert await transport.size(queue_name) == 0

    await delivery.ack()
    await delivery.ack()  # twice: nothing more happens
    assert not await raw.hexists(keys.unacked, tag)
    assert await raw.zscore(keys.unacked_index, tag) is None
    assert not await raw.exists(keys.delivery_count(tag))
    await consumer.cancel()


async def test_priorities_are_served_lowest_first(transport: RedisTransport, queue_name: str) -> None:
    for n, priority in enumerate([9, 0, 5, 7, 1]):
        await transport.publish(message(n, priority=priority), queue_name)
    consumer = transport.consume([queue_name], prefetch=0)
    order = []
    for _ in range(5):
        delivery = await anext(consumer)
        order.append(delivery.message.priority)
        await delivery.ack()
    assert order == [0, 1, 5, 7, 9]
    await consumer.cancel()


async def test_earlier_queues_first(transport: RedisTransport, queue_name: str) -> None:
    first, second = f"{queue_name}-a", f"{queue_name}-b"
    await transport.publish(message(1), second)
    await transport.publish(message(2), first)
    consumer = transport.consume([first, second], prefetch=0)
    assert [(await anext(consumer)).queue for _ in range(2)] == [first, second]
    await consumer.cancel()


async def test_prefetch_window(transport: RedisTransport, raw: aioredis.Redis, queue_name: str) -> None:
    for n in range(5):
        await transport.publish(message(n), queue_name)
    consumer = transport.consume([queue_name], prefetch=2)
    first = await anext(consumer)
    second = await anext(consumer)
    assert await raw.hlen(transport.settings.keys.unacked) == 2
    blocked = asyncio.ensure_future(anext(consumer))
    await asyncio.sleep(0.2)  # a window: the third fetch must not happen while two are un-acked
    assert not blocked.done() and await transport.size(queue_name) == 3
    await first.ack()
    third = await asyncio.wait_for(blocked, 5)
    assert third.message.headers["id"] == "task-2"
    for d in (second, third):
        await d.ack()
    await consumer.cancel()


async def test_idle_consumer_blocks_without_polling(make: Callable[..., RedisTransport], queue_name: str) -> None:
    async with make(block_timeout=0.2) as transport:
        fetches = count_fetches(transport)
        consumer = transport.consume([queue_name], prefetch=4)
        pending = asyncio.ensure_future(anext(consumer))
        await eventually(lambda: fetches[0] == 1)
        await asyncio.sleep(1.0)  # five block timeouts pass: the waits re-block, nothing fetches
        assert fetches[0] == 1
        await transport.publish(message(7), queue_name)
        delivery = await asyncio.wait_for(pending, 5)
        # The armed fetch behind the wait took it: no fetch of the consumer's own.
        assert delivery.message.headers["id"] == "task-7" and fetches[0] == 1
        await delivery.ack()
        await consumer.cancel()


async def test_reject_requeue_and_drop(transport: RedisTransport, raw: aioredis.Redis, queue_name: str) -> None:
    await transport.publish(message(1), queue_name)
    await transport.publish(message(2), queue_name)
    consumer = transport.consume([queue_name], prefetch=1)
    first = await anext(consumer)
    assert first.message.headers["id"] == "task-1"
    await first.reject(requeue=True)  # back of the queue, as kombu's LPUSH
    second = await anext(consumer)
    assert second.message.headers["id"] == "task-2"
    await second.reject(requeue=False)
    again = await anext(consumer)
    assert again.message.headers["id"] == "task-1"
    assert again.redelivered and again.message.headers["redelivered"] is True
    assert isinstance(again, RedisDelivery) and again.delivery_count == 2
    assert again.delivery_tag == first.delivery_tag
    await again.ack()
    assert await raw.hlen(transport.settings.keys.unacked) == 0
    assert await transport.size(queue_name) == 0
    await consumer.cancel()


async def test_dead_letter_after_max_deliveries(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with make(max_deliveries=2) as transport:
        keys = transport.settings.keys
        await transport.publish(message(1), queue_name)
        consumer = transport.consume([queue_name], prefetch=1)
        for _ in range(2):
            delivery = await anext(consumer)
            assert delivery.message.headers["id"] == "task-1"
            await delivery.reject(requeue=True)
        await transport.publish(message(2), queue_name)
        with caplog.at_level(logging.WARNING, logger="celeriac.transports.redis"):
            survivor = await anext(consumer)  # task-1's third delivery is dead-lettered on the way
        assert survivor.message.headers["id"] == "task-2"
        assert "task-1" in caplog.text and f"{queue_name}.dead" in caplog.text
        dead = await raw.lrange(keys.dead_letter(queue_name), 0, -1)
        assert len(dead) == 1 and json.loads(dead[0])["headers"]["id"] == "task-1"
        tag = json.loads(dead[0])["properties"]["delivery_tag"]
        assert not await raw.hexists(keys.unacked, tag) and not await raw.exists(keys.delivery_count(tag))
        assert await raw.ttl(keys.dead_letter(queue_name)) > 0
        assert await transport.size(transport.dead_letter_queue(queue_name)) == 1
        await survivor.ack()
        await consumer.cancel()


async def test_unreadable_message_is_dead_lettered(
    transport: RedisTransport, raw: aioredis.Redis, queue_name: str
) -> None:
    keys = transport.settings.keys
    await raw.lpush(keys.queue(queue_name), b"this is not an envelope")
    await transport.publish(message(3), queue_name)
    consumer = transport.consume([queue_name], prefetch=2)
    delivery = await anext(consumer)
    assert delivery.message.headers["id"] == "task-3"
    assert await raw.lrange(keys.dead_letter(queue_name), 0, -1) == [b"this is not an envelope"]
    await delivery.ack()
    await consumer.cancel()


async def test_cancel_and_close_restore_undelivered(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str
) -> None:
    transport = make()
    await transport.connect()
    for n in range(3):
        await transport.publish(message(n), queue_name)
    consumer = transport.consume([queue_name], prefetch=3)
    held = await anext(consumer)  # the fetch moved all three; two wait in the consumer's buffer
    await consumer.cancel()  # the two never handed out go back now
    assert await transport.size(queue_name) == 2
    with pytest.raises(StopAsyncIteration):
        await anext(consumer)
    await transport.close()  # the held, un-acked one goes back to the front, marked redelivered
    await transport.close()
    with pytest.raises(TransportClosed):
        await transport.size(queue_name)
    with pytest.raises(TransportClosed):
        await held.ack()
    async with make() as again:
        consumer = again.consume([queue_name], prefetch=1)
        first = await anext(consumer)
        assert first.message.headers["id"] == held.message.headers["id"] and first.redelivered
        await first.ack()
        await consumer.cancel()
    assert await raw.hlen(f"{transport.settings.keys.unacked}") == 0


async def test_acks_are_batched(make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str) -> None:
    async with make() as transport:
        for n in range(200):
            await transport.publish(message(n), queue_name)
        calls = 0
        real_ack = transport.ops.ack

        async def counting_ack(items: Any) -> None:
            nonlocal calls
            calls += 1
            await real_ack(items)

        transport.acks._send = counting_ack  # the batcher's round trip, counted
        consumer = transport.consume([queue_name], prefetch=200)
        deliveries = [await anext(consumer) for _ in range(200)]
        await asyncio.gather(*(d.ack() for d in deliveries))
        assert calls <= 3
        assert await raw.hlen(transport.settings.keys.unacked) == 0
        await consumer.cancel()


async def test_purge_and_size(transport: RedisTransport, queue_name: str) -> None:
    for n, priority in enumerate([0, 4, 9]):
        await transport.publish(message(n, priority=priority), queue_name)
    assert await transport.size(queue_name) == 3
    assert await transport.purge(queue_name) == 3
    assert await transport.size(queue_name) == 0


async def test_named_exchange_routes_through_bindings(transport: RedisTransport, queue_name: str) -> None:
    await transport.declare(queue_name)
    await transport.bind(f"{queue_name}-t", "tx", "a.*.#", pattern=r"^a\.[^\.]+\..*?$")
    await transport.publish(message(1), queue_name, exchange=queue_name)
    await transport.publish(message(2), "a.b.c", exchange="tx")
    await transport.publish(message(3), "nowhere", exchange="tx")  # no route: dropped, as kombu drops it
    assert await transport.size(queue_name) == 1 and await transport.size(f"{queue_name}-t") == 1


# -- visibility timeout --------------------------------------------------------------------------------------


async def test_long_running_delivery_is_not_restored(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str
) -> None:
    options = {"renew_interval": 0.3, "unacked_restore_interval": 0.1}
    async with make(visibility_timeout=1.0, **options) as worker, make(visibility_timeout=1.0, **options) as peer:
        keys = worker.settings.keys
        await worker.publish(message(1), queue_name)
        consumer = worker.consume([queue_name], prefetch=1)
        delivery = await anext(consumer)
        peer_consumer = peer.consume([queue_name], prefetch=1)
        stolen = asyncio.ensure_future(anext(peer_consumer))  # its restorer sweeps every 0.1 s
        started = time.time()
        scores: list[float] = []

        async def renewed_for_three_timeouts() -> bool:
            score = await raw.zscore(keys.unacked_index, delivery.delivery_tag)
            assert score is not None, "the live consumer's delivery was restored"
            if not scores or score > scores[-1]:
                scores.append(score)
            return time.time() - started > 3.0

        await eventually(renewed_for_three_timeouts, timeout=10)
        assert len(scores) >= 5 and not stolen.done()
        await delivery.ack()
        stolen.cancel()
        await consumer.cancel()
        await peer_consumer.cancel()


async def test_expired_delivery_is_routed_again_through_its_exchange(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str
) -> None:
    # A consumer that never renews (as if its process froze) loses its delivery to the restore, which routes
    # the message again with the exchange and routing key it was published with (kombu's restore).
    async with (
        make(visibility_timeout=1.0, renew_interval=3600) as frozen,
        make(visibility_timeout=1.0, unacked_restore_interval=0.1) as live,
    ):
        await frozen.bind(queue_name, "ex", "rk")
        await frozen.publish(message(1, priority=5), "rk", exchange="ex")
        stuck = await anext(frozen.consume([queue_name], prefetch=1))
        assert (stuck.exchange, stuck.routing_key) == ("ex", "rk")
        consumer = live.consume([queue_name], prefetch=1)
        delivery = await asyncio.wait_for(anext(consumer), 10)
        assert delivery.delivery_tag == stuck.delivery_tag and delivery.redelivered
        assert delivery.message.priority == 5 and delivery.message.headers["redelivered"] is True
        await stuck.ack()  # too late: the newer delivery keeps its bookkeeping (the counts differ)
        assert await raw.hexists(live.settings.keys.unacked, delivery.delivery_tag)
        await delivery.ack()
        assert not await raw.hexists(live.settings.keys.unacked, delivery.delivery_tag)
        await consumer.cancel()


# The child may be killed in the middle of its start-up restore sweep, holding the restore lock: a 1 s lock
# life keeps that from blocking the restore this test waits for.
CONSUMER_SCRIPT = """
import asyncio, sys
from celeriac.transports.base import TransportOptions
from celeriac.transports.redis.transport import RedisTransport

async def main():
    url, prefix, queue = sys.argv[1:4]
    options = TransportOptions(
        visibility_timeout=1.0,
        extra={"global_keyprefix": prefix, "renew_interval": 0.2, "unacked_mutex_expire": 1},
    )
    transport = RedisTransport(url, options)
    await transport.connect()
    delivery = await anext(transport.consume([queue], prefetch=1))
    print(delivery.delivery_tag, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_killed_consumer_messages_come_back(
    make: Callable[..., RedisTransport], redis_url: str, prefix: str, raw: aioredis.Redis, queue_name: str
) -> None:
    async with make(visibility_timeout=1.0, unacked_restore_interval=0.1) as transport:
        await transport.publish(message(1), queue_name)
        child = subprocess.Popen(
            [sys.executable, "-c", CONSUMER_SCRIPT, redis_url, prefix, queue_name],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            tag = (await asyncio.to_thread(child.stdout.readline)).strip()
            assert tag and await raw.hexists(transport.settings.keys.unacked, tag)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        consumer = transport.consume([queue_name], prefetch=1)
        delivery = await asyncio.wait_for(anext(consumer), 10)
        assert delivery.delivery_tag == tag and delivery.redelivered
        assert isinstance(delivery, RedisDelivery) and delivery.delivery_count == 2
        await delivery.ack()
        await consumer.cancel()


# -- connection loss -----------------------------------------------------------------------------------------


async def test_killed_connections_are_replaced(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, client_name: str, queue_name: str
) -> None:
    async with make() as transport:
        consumer = transport.consume([queue_name], prefetch=1)
        pending = asyncio.ensure_future(anext(consumer))
        await eventually(lambda: _blocked(raw, client_name))  # idle: its blocking waits are on the server
        assert await kill_clients(raw, client_name) > 0  # the waits and the idle pooled connections
        await transport.publish(message(5), queue_name)  # a killed pooled connection: replaced, retried once
        delivery = await asyncio.wait_for(pending, 5)  # the waits re-block on fresh connections
        assert delivery.message.headers["id"] == "task-5"
        await delivery.ack()
        await consumer.cancel()


async def test_outage_raises_connection_lost_then_reconnects(
    redis_url: str, prefix: str, raw: aioredis.Redis, client_name: str, queue_name: str
) -> None:
    target = aioredis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    async with TcpProxy(target["host"], target["port"]) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/{target.get('db', 0)}"
        options = TransportOptions(extra={"global_keyprefix": prefix, "client_name": client_name})
        async with RedisTransport(url, options) as transport:
            consumer = transport.consume([queue_name], prefetch=1)
            pending = asyncio.ensure_future(anext(consumer))
            await eventually(lambda: _blocked(raw, client_name, count=4))  # one wait per priority list
            await proxy.stop()  # Redis "goes away": live links cut, new ones refused
            with pytest.raises(ConnectionLost):
                await asyncio.wait_for(pending, 5)
            with pytest.raises(ConnectionLost):
                await transport.size(queue_name)
            await proxy.start()
            await transport.publish(message(6), queue_name)
            delivery = await asyncio.wait_for(anext(consumer), 5)  # iterating again reconnects
            assert delivery.message.headers["id"] == "task-6"
            await delivery.ack()
            await consumer.cancel()


async def _blocked(raw: aioredis.Redis, name: str, count: int = 1) -> bool:
    """True once ``count`` connections named ``name`` are blocked in BLMOVE (the consumer is idle)."""
    clients = await raw.client_list()
    return sum(c.get("name") == name and c.get("cmd") == "blmove" for c in clients) >= count


# -- fanout --------------------------------------------------------------------------------------------------


async def test_fanout_reaches_pattern_and_exact_subscribers(transport: RedisTransport) -> None:
    events = await transport.subscribe(["celeryev/#"])
    control = await transport.subscribe(["celery.pidbox"])
    await transport.fanout("celeryev/worker.heartbeat", message(1))
    await transport.fanout("celery.pidbox", message(2))
    channel, got = await asyncio.wait_for(anext(events), 5)
    assert channel == "celeryev/worker.heartbeat" and got.headers["id"] == "task-1"
    channel, got = await asyncio.wait_for(anext(control), 5)
    assert channel == "celery.pidbox" and got.body == message(2).body
    pending = asyncio.ensure_future(anext(events))
    await events.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 5)
    await control.close()


async def test_pinged_subscription_delivers_only_messages(make: Callable[..., RedisTransport]) -> None:
    """PINGs every 0.05 s on an idle subscription: their replies never surface as broadcasts."""
    async with make(pubsub_ping_interval=0.05) as transport:
        control = await transport.subscribe(["celery.pidbox"])
        await asyncio.sleep(0.5)
        await transport.fanout("celery.pidbox", message(3))
        channel, got = await asyncio.wait_for(anext(control), 5)
        assert channel == "celery.pidbox" and got.body == message(3).body
        await control.close()


# -- result backend ------------------------------------------------------------------------------------------


def meta(task_id: str, status: str, result: Any = None) -> TaskMeta:
    return TaskMeta(task_id=task_id, status=status, result=result, traceback=None, children=[], date_done=None)


@pytest.fixture
async def backend(redis_url: str, prefix: str, client_name: str, raw: aioredis.Redis) -> AsyncIterator[RedisBackend]:
    options = BackendOptions(expires=60, extra={"global_keyprefix": prefix, "client_name": client_name})
    async with RedisBackend(redis_url, options) as b:
        yield b


async def test_backend_store_get_forget(backend: RedisBackend, raw: aioredis.Redis, prefix: str) -> None:
    task_id = str(uuid.uuid4())
    assert (await backend.get_meta(task_id))["status"] == "PENDING"
    await backend.store(meta(task_id, "STARTED"))
    assert await raw.ttl(f"{prefix}celery-task-meta-{task_id}") == 60
    await backend.store(meta(task_id, "SUCCESS", 5), expires=0)
    assert await raw.ttl(f"{prefix}celery-task-meta-{task_id}") == -1
    await backend.store(meta(task_id, "FAILURE"))  # never replaces a SUCCESS
    assert (await backend.get_meta(task_id))["result"] == 5
    await backend.forget(task_id)
    assert (await backend.get_meta(task_id))["status"] == "PENDING"


async def test_backend_waiters_share_one_connection(
    backend: RedisBackend, raw: aioredis.Redis, client_name: str
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(20)]
    waits = [asyncio.ensure_future(backend.wait(i, timeout=10)) for i in ids]

    async def all_subscribed() -> bool:
        subs = [c for c in await raw.client_list(_type="pubsub") if c.get("name") == client_name]
        return len(subs) == 1 and int(subs[0]["sub"]) == 20

    await eventually(all_subscribed)
    await backend.store(meta(ids[0], "STARTED"))  # not ready: waits go on
    for n, task_id in enumerate(ids):
        await backend.store(meta(task_id, "SUCCESS", n))
    results = await asyncio.gather(*waits)
    assert [r["result"] for r in results] == list(range(20))
    await eventually(lambda: _no_subscriptions(raw, client_name))


async def _no_subscriptions(raw: aioredis.Redis, name: str) -> bool:
    return all(int(c["sub"]) == 0 for c in await raw.client_list(_type="pubsub") if c.get("name") == name)


async def test_backend_wait_returns_stored_result_and_times_out(backend: RedisBackend) -> None:
    done, pending = str(uuid.uuid4()), str(uuid.uuid4())
    await backend.store(meta(done, "FAILURE", {"exc_type": "ValueError"}))
    assert (await backend.wait(done, timeout=5))["status"] == "FAILURE"
    with pytest.raises(TimeoutError):
        await backend.wait(pending, timeout=0.3)


async def test_backend_wait_survives_killed_pubsub_connection(
    backend: RedisBackend, raw: aioredis.Redis, client_name: str
) -> None:
    task_id = str(uuid.uuid4())
    waiting = asyncio.ensure_future(backend.wait(task_id, timeout=15))

    async def subscribed() -> bool:
        return any(c.get("name") == client_name for c in await raw.client_list(_type="pubsub"))

    await eventually(subscribed)
    assert await kill_clients(raw, client_name, kind="pubsub") == 1
    await backend.store(meta(task_id, "SUCCESS", 42))  # possibly while nobody listens: the catch-up reads it
    assert (await asyncio.wait_for(waiting, 15))["result"] == 42
