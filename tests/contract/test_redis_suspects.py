"""Messages the visibility restore brings back (their consumer died holding them) are fetched alone (issue 10).

So a poison task is never prefetched together with innocent ones again; a suspect the worker will hold (an ETA
in the future) does not make the consumer wait.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from celeriac.protocol.message import Message
from celeriac.transports.redis.restore import Restorer
from celeriac.transports.redis.transport import RedisTransport

pytestmark = pytest.mark.redis


def message(n: int, **headers: Any) -> Message:
    return Message(
        body=b'[[%d], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]' % n,
        headers={"lang": "py", "task": "tests.add", "id": f"task-{n}", **headers},
        properties={"correlation_id": f"task-{n}", "reply_to": "", "delivery_mode": 2, "priority": 0},
    )


async def strand_and_restore(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue: str, messages: list[Message]
) -> None:
    """Publish ``messages``, let a consumer that then "dies" fetch them, and restore them after its timeout."""
    async with make() as dead:
        keys = dead.settings.keys
        for item in messages:
            await dead.publish(item, queue)
        outcome = await dead.ops.fetch(keys.consume_order([queue]), len(messages), keys.claim("dead"), 1, 1)
        assert len(outcome.delivered) == len(messages)
        await raw.delete(dead.ops.owned, keys.claim("dead"))  # as if its process was killed: nothing to hand back
        tags = await raw.hkeys(keys.unacked)
        await raw.zadd(keys.unacked_index, dict.fromkeys(tags, 1.0))  # long expired
    async with make(visibility_timeout=1.0) as live:
        assert await Restorer(live.ops).sweep() == len(messages)


async def test_restored_messages_are_fetched_one_at_a_time(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str
) -> None:
    await strand_and_restore(make, raw, queue_name, [message(n) for n in range(3)])
    async with make() as transport:
        keys = transport.settings.keys
        consumer = transport.consume([queue_name], prefetch=10)
        for left in (2, 1, 0):
            delivery = await asyncio.wait_for(anext(consumer), 5)
            assert delivery.suspect and delivery.delivery_count == 2
            assert await raw.llen(keys.queue(queue_name)) == left  # nothing fetched beside it
            await delivery.ack()
        await consumer.cancel()


async def test_restored_eta_messages_do_not_hold_up_fetching(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str
) -> None:
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    await strand_and_restore(make, raw, queue_name, [message(n, eta=later) for n in range(20)])
    async with make() as transport:
        for n in range(20, 25):
            await transport.publish(message(n), queue_name)
        consumer = transport.consume([queue_name], prefetch=0)
        seen = [await asyncio.wait_for(anext(consumer), 5) for _ in range(25)]  # none settled: all "held"
        assert {d.message.headers["id"] for d in seen} == {f"task-{n}" for n in range(25)}
        assert sum(1 for d in seen if d.delivery_count == 2) == 20
        for delivery in seen:
            await delivery.ack()
        await consumer.cancel()


async def test_ack_of_a_suspect_drops_its_mark(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str
) -> None:
    await strand_and_restore(make, raw, queue_name, [message(1)])
    async with make() as transport:
        keys = transport.settings.keys
        consumer = transport.consume([queue_name], prefetch=1)
        delivery = await asyncio.wait_for(anext(consumer), 5)
        assert await raw.exists(keys.delivery_count(delivery.delivery_tag) + ".suspect")
        await delivery.ack()
        assert not await raw.exists(keys.delivery_count(delivery.delivery_tag) + ".suspect")
        await consumer.cancel()
