"""A closing Redis transport re-queues at once what it still owns (issue 10 item 3).

* a fetch whose reply was lost (the script moved the messages into ``unacked``, the consumer never heard) is
  put back when the transport closes, not after the visibility timeout;
* deliveries the consumer could not restore at close because Redis was unreachable are put back as soon as
  Redis answers again;
* an owned delivery that was restored and fetched by another consumer meanwhile is left alone.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from celeriac._redis.lane import Lane
from celeriac.protocol.message import Message
from celeriac.transports.base import TransportOptions
from celeriac.transports.redis.transport import RedisTransport
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.redis


def message(n: int) -> Message:
    return Message(
        body=b'[[%d], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]' % n,
        headers={"lang": "py", "task": "tests.add", "id": f"task-{n}"},
        properties={"correlation_id": f"task-{n}", "reply_to": "", "delivery_mode": 2, "priority": 0},
    )


async def eventually(check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[misc]
        assert time.monotonic() < deadline, "not within the time limit"
        await asyncio.sleep(0.02)


async def test_lost_fetch_reply_is_requeued_at_close(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str
) -> None:
    async with make() as transport:
        keys = transport.settings.keys
        for n in range(3):
            await transport.publish(message(n), queue_name)
        # The fetch script runs, its reply is "lost": the messages sit in unacked, no consumer knows of them.
        outcome = await transport.ops.fetch(keys.consume_order([queue_name]), 3, keys.claim("lost"), 1, 1)
        assert len(outcome.delivered) == 3 and await raw.llen(keys.queue(queue_name)) == 0
        assert await raw.hlen(keys.unacked) == 3
    assert await raw.llen(keys.queue(queue_name)) == 3  # back at close: not after the visibility timeout
    assert await raw.hlen(keys.unacked) == 0 and await raw.zcard(keys.unacked_index) == 0
    assert not await raw.exists(transport.ops.owned)
    await raw.delete(keys.claim("lost"))


async def test_owned_entry_fetched_elsewhere_is_left_alone(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str
) -> None:
    async with make() as first, make() as second:
        keys = first.settings.keys
        await first.publish(message(1), queue_name)
        await first.ops.fetch(keys.consume_order([queue_name]), 1, keys.claim("a"), 1, 1)  # reply "lost"
        [(tag, _, value)] = await first.ops.owned_entries()
        assert value is not None
        # The visibility restore gives it back and another consumer fetches it (delivery count 2).
        await first.ops.move_back(tag, json.dumps(json.loads(value)[0]), [keys.queue(queue_name)], front=True)
        consumer = second.consume([queue_name], prefetch=1)
        delivery = await asyncio.wait_for(anext(consumer), 5)
        assert delivery.delivery_count == 2
        await first.close()
        assert await raw.hexists(keys.unacked, tag)  # still the second consumer's
        await delivery.ack()
        await consumer.cancel()
        await raw.delete(keys.claim("a"))


async def test_deliveries_not_restored_at_close_come_back_when_redis_answers(
    redis_url: str, prefix: str, raw: aioredis.Redis, client_name: str, queue_name: str
) -> None:
    target = aioredis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    async with TcpProxy(target["host"], target["port"]) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/{target.get('db', 0)}"
        options = TransportOptions(extra={"global_keyprefix": prefix, "client_name": client_name})
        transport = RedisTransport(url, options)
        await transport.connect()
        keys = transport.settings.keys
        for n in range(4):
            await transport.publish(message(n), queue_name)
        consumer = transport.consume([queue_name], prefetch=4)
        held = [await asyncio.wait_for(anext(consumer), 5) for _ in range(2)]  # two handed out, two ready
        assert len(held) == 2 and await raw.hlen(keys.unacked) == 4
        await proxy.stop()  # Redis "goes away"
        await asyncio.wait_for(transport.close(), 30)  # cannot restore anything now
        assert await raw.hlen(keys.unacked) == 4
        await proxy.start()  # back: the transport re-queues them at once (not after the 1 h visibility timeout)
        await eventually(lambda: _all_back(raw, keys.queue(queue_name), keys.unacked), 15)
        await eventually(lambda: _gone(raw, transport.ops.owned), 5)


async def _all_back(raw: aioredis.Redis, queue: str, unacked: str) -> bool:
    return bool(await raw.llen(queue) == 4 and await raw.hlen(unacked) == 0)


async def _gone(raw: aioredis.Redis, key: str) -> bool:
    return not await raw.exists(key)


async def test_lost_reply_found_in_life_is_requeued_before_the_next_fetch(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str
) -> None:
    async with make() as transport:
        keys = transport.settings.keys
        for n in range(3):
            await transport.publish(message(n), queue_name)
        consumer = transport.consume([queue_name], prefetch=10)
        first = await asyncio.wait_for(anext(consumer), 5)  # all 3 fetched; take one
        await first.ack()
        for n in range(3, 6):
            await transport.publish(message(n), queue_name)
        # A fetch of this transport ran but its reply was lost (as after a retried round trip):
        await transport.ops.fetch(keys.consume_order([queue_name]), 3, keys.claim("lost"), 1, 1)
        assert await raw.llen(keys.queue(queue_name)) == 0
        consumer.reply_lost()
        seen = {first.message.headers["id"]}
        while len(seen) < 6:
            delivery = await asyncio.wait_for(anext(consumer), 5)
            seen.add(delivery.message.headers["id"])
            await delivery.ack()
        assert seen == {f"task-{n}" for n in range(6)}
        await consumer.cancel()
        await raw.delete(keys.claim("lost"))


async def test_lane_counts_the_calls_it_sent_twice(make: Callable[..., RedisTransport], raw: aioredis.Redis) -> None:
    async with make() as transport:
        lane = Lane(transport.ops.client)
        await lane.execute("CLIENT", "SETNAME", "celeriac-lane-test")
        assert lane.retries == 0
        for client in await raw.client_list():
            if client.get("name") == "celeriac-lane-test":
                await raw.client_kill_filter(_id=client["id"])
        assert await lane.execute("PING")
        assert lane.retries == 1
        await lane.close()
