"""The Redis consumer's armed waits (`transports.redis.idle`, `transports.redis.wait`): an idle consumer's wake-up
is one round trip, several armed fetches stay within the prefetch window together, and stopping or breaking an
armed wait strands nothing in ``unacked``. Against a real Redis, under a key prefix of the test's own (deleted
afterwards).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from test_redis_specific import count_fetches, eventually, message

from celeriac.errors import ConnectionLost
from celeriac.transports.redis import envelope as redis_envelope
from celeriac.transports.redis.delivery import RedisDelivery
from celeriac.transports.redis.transport import RedisTransport
from celeriac.transports.redis.wait import Waiter

pytestmark = pytest.mark.redis


async def blocked(raw: aioredis.Redis, name: str) -> int:
    """How many connections named ``name`` are blocked in BLMOVE (armed waits)."""
    return sum(c.get("name") == name and c.get("cmd") == "blmove" for c in await raw.client_list())


async def push_at_once(raw: aioredis.Redis, transport: RedisTransport, items: list[tuple[str, int, int]]) -> None:
    """LPUSH ``(queue, priority, n)`` messages in one MULTI, so every list fills in the same instant."""
    keys = transport.settings.keys
    async with raw.pipeline(transaction=True) as pipe:
        for queue, priority, n in items:
            pipe.lpush(keys.queue(queue, priority), redis_envelope.encode(message(n, priority=priority), "", queue))
        await pipe.execute()


async def claim_keys(raw: aioredis.Redis, prefix: str) -> list[bytes]:
    return [key async for key in raw.scan_iter(match=f"{prefix}celeriac.claim.*")]


async def test_idle_consumer_gets_message_already_claimed(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, client_name: str, prefix: str, queue_name: str
) -> None:
    async with make() as transport:
        fetches = count_fetches(transport)
        consumer = transport.consume([queue_name], prefetch=4)
        pending = asyncio.ensure_future(anext(consumer))
        await eventually(lambda: _is(blocked(raw, client_name), 4))  # one armed wait per priority list
        [claim] = await claim_keys(raw, prefix)
        assert (await raw.get(claim) or b"").startswith(b"open ") and await raw.pttl(claim) > 0
        await transport.publish(message(1), queue_name)
        delivery = await asyncio.wait_for(pending, 5)
        assert fetches[0] == 1  # the empty fetch that armed the waits; the wake-up itself fetched nothing more
        assert await raw.hexists(transport.settings.keys.unacked, delivery.delivery_tag)
        assert (await raw.get(claim) or b"").startswith(b"claimed ")
        await delivery.ack()
        await consumer.cancel()
        assert await claim_keys(raw, prefix) == []  # the owner deletes its claim


async def _is(count: Any, expected: int) -> bool:
    return bool(await count == expected)


async def test_armed_fetches_stay_within_the_window(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, client_name: str, queue_name: str
) -> None:
    first, second = f"{queue_name}-a", f"{queue_name}-b"
    async with make() as transport:
        unacked = transport.settings.keys.unacked
        consumer = transport.consume([first, second], prefetch=3)
        highest = 0
        sampling = True

        async def sample() -> None:  # (stopped by a flag: redis-py can swallow a cancel)
            nonlocal highest
            while sampling:
                highest = max(highest, await raw.hlen(unacked))
                await asyncio.sleep(0)

        sampler = asyncio.create_task(sample())
        seen: list[str] = []
        try:
            for burst in range(4):
                pending = asyncio.ensure_future(anext(consumer))
                await eventually(lambda: _is(blocked(raw, client_name), 8))  # 2 queues x 4 priority lists
                # Every list fills at once: eight armed fetches run back to back; one may take messages.
                lists = [(q, p) for q in (first, second) for p in (0, 3, 6, 9)]
                items = [(q, p, 100 * burst + 10 * i + j) for i, (q, p) in enumerate(lists) for j in range(2)]
                await push_at_once(raw, transport, items)
                held = [await asyncio.wait_for(pending, 5)]
                held += [await asyncio.wait_for(anext(consumer), 5) for _ in range(2)]
                over = asyncio.ensure_future(anext(consumer))
                await asyncio.sleep(0.1)
                assert not over.done() and await raw.hlen(unacked) == 3  # the window is full: nothing more
                received = 3
                while held:
                    delivery = held.pop(0)
                    seen.append(delivery.message.headers["id"])
                    await delivery.ack()
                    if received < len(items):
                        held.append(await asyncio.wait_for(over, 5))
                        received += 1
                        if received < len(items):
                            over = asyncio.ensure_future(anext(consumer))
        finally:
            sampling = False
            await sampler
        assert highest <= 3
        assert len(seen) == len(set(seen)) == 64
        await consumer.cancel()


async def open_window(raw: aioredis.Redis, claim: bytes) -> int | None:
    """The window the claim ``claim`` is open for (its value is ``open <generation> <window> <id>``), else None."""
    value = (await raw.get(claim) or b"").split()
    return int(value[2]) if len(value) == 4 and value[0] == b"open" else None


async def test_lowered_prefetch_applies_to_an_armed_wait(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, client_name: str, prefix: str, queue_name: str
) -> None:
    async with make() as transport:
        consumer = transport.consume([queue_name], prefetch=4)
        pending = asyncio.ensure_future(anext(consumer))
        await eventually(lambda: _is(blocked(raw, client_name), 4))  # armed for a window of 4
        [claim] = await claim_keys(raw, prefix)
        assert await open_window(raw, claim) == 4
        consumer.set_prefetch(1)
        # Closed and opened again for 1. The armed waits stay blocked throughout, so their count says nothing:
        # a message pushed before the consumer closed the claim for 4 is rightly taken under the old window.
        await eventually(lambda: _is(open_window(raw, claim), 1))
        await push_at_once(raw, transport, [(queue_name, 0, n) for n in range(5)])
        delivery = await asyncio.wait_for(pending, 5)
        await asyncio.sleep(0.1)
        assert await raw.hlen(transport.settings.keys.unacked) == 1 and await transport.size(queue_name) == 4
        await delivery.ack()
        await consumer.cancel()


@pytest.mark.parametrize("delay", [0, 1, 2, 5, 20])
async def test_cancel_while_armed_strands_nothing(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, client_name: str, queue_name: str, delay: int
) -> None:
    # Publish and cancel race: whatever an armed fetch took reaches the ready buffer and is restored by
    # cancel(); nothing waits in unacked for the visibility timeout.
    async with make() as transport:
        unacked = transport.settings.keys.unacked
        for round_ in range(10):
            consumer = transport.consume([queue_name], prefetch=4)
            pending = asyncio.ensure_future(anext(consumer))
            await eventually(lambda: _is(blocked(raw, client_name), 4))
            await push_at_once(raw, transport, [(queue_name, 0, round_)])
            for _ in range(delay):  # a few loop turns: before, while and after the armed fetch's reply
                await asyncio.sleep(0)
            await consumer.cancel()
            with contextlib.suppress(StopAsyncIteration):
                (await asyncio.wait_for(pending, 5)).message  # noqa: B018 (handed out before the cancel: fine)
            delivered = pending.done() and not pending.cancelled() and pending.exception() is None
            if delivered:
                await pending.result().reject(requeue=True)
            assert await raw.hlen(unacked) == 0
            assert await transport.size(queue_name) == 1
            assert await transport.purge(queue_name) == 1


async def test_remove_queue_while_armed_strands_nothing(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, client_name: str, queue_name: str
) -> None:
    kept, removed = f"{queue_name}-kept", f"{queue_name}-removed"
    async with make() as transport:
        unacked = transport.settings.keys.unacked
        consumer = transport.consume([kept, removed], prefetch=4)
        for round_ in range(10):
            pending = asyncio.ensure_future(anext(consumer))
            await eventually(lambda: _is(blocked(raw, client_name), 8))
            await push_at_once(raw, transport, [(removed, 0, round_)])
            await asyncio.sleep(0.001 * round_)
            await consumer.remove_queue(removed)
            await transport.publish(message(1000 + round_), kept)
            got = [await asyncio.wait_for(pending, 5)]
            if got[0].queue == removed:  # the armed fetch took it before the removal: delivered, not stranded
                got.append(await asyncio.wait_for(anext(consumer), 5))
            assert [d.queue for d in got][-1] == kept
            tags = {d.delivery_tag for d in got}
            assert {tag.decode() for tag in await raw.hkeys(unacked)} == tags  # nothing else in unacked
            assert len(got) - 1 + await transport.size(removed) == 1
            for delivery in got:
                await delivery.ack()
            await transport.purge(removed)
            await consumer.add_queue(removed)
        await consumer.cancel()


async def test_killed_blocking_connections_while_armed_lose_and_duplicate_nothing(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, client_name: str, queue_name: str
) -> None:
    async with make() as transport:
        keys = transport.settings.keys
        consumer = transport.consume([queue_name], prefetch=4)
        for round_ in range(6):
            pending = asyncio.ensure_future(anext(consumer))
            await eventually(lambda: _is(blocked(raw, client_name), 4))
            ids = [
                c["id"] for c in await raw.client_list() if c.get("name") == client_name and c.get("cmd") == "blmove"
            ]
            envelope = redis_envelope.encode(message(round_), "", queue_name)
            # Kill before the push, or push and kill in one go (the kill lands before the armed fetch runs).
            async with raw.pipeline(transaction=False) as pipe:
                if round_ % 2:
                    pipe.lpush(keys.queue(queue_name), envelope)
                for client_id in ids:
                    pipe.execute_command("CLIENT", "KILL", "ID", client_id)
                if not round_ % 2:
                    pipe.lpush(keys.queue(queue_name), envelope)
                await pipe.execute()
            # The waits are retried once on fresh connections. A wait of another list that is still on its retry
            # from an earlier round gives up when killed again: each such wait raises ConnectionLost once (up to
            # one per list), and iterating again reconnects it, as a worker's consumer does.
            for _ in range(8):
                try:
                    delivery = await asyncio.wait_for(pending, 5)
                    break
                except ConnectionLost:
                    pending = asyncio.ensure_future(anext(consumer))
            else:
                raise AssertionError("the consumer kept raising ConnectionLost")
            assert delivery.message.headers["id"] == f"task-{round_}"
            assert await raw.hlen(keys.unacked) == 1 and await transport.size(queue_name) == 0
            assert isinstance(delivery, RedisDelivery) and delivery.delivery_count == 1
            await delivery.ack()
        extra = asyncio.ensure_future(anext(consumer))
        await asyncio.sleep(0.2)
        assert not extra.done()  # nothing delivered twice
        extra.cancel()
        await consumer.cancel()
        assert await raw.hlen(keys.unacked) == 0


async def test_retried_armed_fetch_cannot_claim_twice(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str
) -> None:
    async with make() as transport:
        ops, keys = transport.ops, transport.settings.keys
        claim, order, key = keys.claim("test"), keys.consume_order([queue_name]), keys.queue(queue_name)
        assert (await ops.fetch(order, 2, claim, 1, 1)).state == "opened"
        assert await raw.get(claim) == b"open 1 2 1"
        await push_at_once(raw, transport, [(queue_name, 0, n) for n in range(3)])
        waiter = Waiter(ops)
        try:
            first = await waiter.claim_when_nonempty(key, order, claim, 1, "r1")
            assert (first.state, first.detail, len(first.delivered)) == ("claimed", "1", 2)
            # The same request sent again (as after a broken connection): it finds its own claim, takes nothing.
            again = await waiter.claim_when_nonempty(key, order, claim, 1, "r1")
            assert (again.state, again.detail, again.delivered) == ("stale", "claimed r1", [])
            assert await raw.hlen(keys.unacked) == 2 and await transport.size(queue_name) == 1
            # A claim opened for another generation refuses an armed fetch of the old one.
            assert (await ops.fetch(order, 5, claim, 2, 2)).state == "fetched"
            assert (await ops.fetch(order, 5, claim, 2, 3)).state == "opened"
            await push_at_once(raw, transport, [(queue_name, 0, 9)])
            old = await waiter.claim_when_nonempty(key, order, claim, 1, "r2")
            assert (old.state, old.detail, old.delivered) == ("stale", "open 2 5 3", [])
            # Closing is idempotent and tells what it closed.
            assert await ops.close_claim(claim) == "open 2 5 3"
            assert await ops.close_claim(claim) == "closed"
            assert (await waiter.claim_when_nonempty(key, order, claim, 2, "r3")).state == "stale"
            assert await transport.size(queue_name) == 1
        finally:
            await waiter.close()
