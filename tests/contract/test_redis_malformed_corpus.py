"""A corpus of 300+ malformed entries in a Redis queue and in ``unacked``: no crash, no valid message lost.

The corpus is generated from a fixed seed: random bytes, random JSON that is not an envelope, valid envelopes with
one field replaced by a value of the wrong type or range (NaN, Infinity, 2**70, ...), and valid envelopes with
bytes that are not UTF-8. Mixed with valid messages, every valid one is delivered (or restored), the rest is
delivered or dead-lettered, and nothing stays in ``unacked``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from celeriac.protocol.message import Message
from celeriac.transports.redis import envelope as redis_envelope
from celeriac.transports.redis.restore import Restorer
from celeriac.transports.redis.transport import RedisTransport

pytestmark = pytest.mark.redis

ODD_VALUES: list[Any] = [
    None, 0, -1, 2**70, 1.5, math.nan, math.inf, -math.inf, "", "x", "not base64!", [], {}, [1, 2], {"a": 1}, True,
    "2026-13-45T99:00:00", "\udcff",
]  # fmt: skip
FIELDS = [
    ("body",), ("content-type",), ("content-encoding",), ("headers",), ("properties",), ("properties", "priority"),
    ("properties", "delivery_tag"), ("properties", "delivery_info"), ("properties", "body_encoding"),
    ("headers", "eta"), ("headers", "id"), ("properties", "delivery_info", "routing_key"),
]  # fmt: skip


def message(n: int) -> Message:
    return Message(
        body=b'[[%d], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]' % n,
        headers={"lang": "py", "task": "tests.add", "id": f"valid-{n}"},
        properties={"correlation_id": f"valid-{n}", "reply_to": "", "delivery_mode": 2, "priority": 0},
    )


def corpus(queue: str, seed: int = 10) -> list[bytes]:
    """Malformed (or at least odd) envelopes, each with a distinct delivery tag where it has one."""
    rng = random.Random(seed)
    entries: list[bytes] = [rng.randbytes(rng.randrange(0, 200)) for _ in range(50)]
    for i in range(40):  # JSON, but not an envelope
        value = rng.choice([[i, "x"], {"properties": i}, {"properties": {"delivery_tag": i}}, "text", i, None])
        entries.append(json.dumps(value).encode())
    base = json.loads(redis_envelope.encode(message(0), "", queue))
    n = 0
    for path in FIELDS:
        for odd in ODD_VALUES:
            fields = copy.deepcopy(base)
            n += 1
            fields["properties"]["delivery_tag"] = f"odd-{n}"
            target = fields
            for key in path[:-1]:
                target = target[key] if isinstance(target.get(key), dict) else target.setdefault(key, {})
            target[path[-1]] = odd
            entries.append(json.dumps(fields).encode("utf-8", "surrogatepass"))
    for i in range(30):  # bytes that are not UTF-8 inside a valid envelope
        fields = copy.deepcopy(base)
        fields["properties"]["delivery_tag"] = f"utf-{i}"
        text = json.dumps(fields, ensure_ascii=False).encode()
        cut = text.index(b'"lang"') + rng.randrange(1, 6)
        entries.append(text[:cut] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xfe\xff"]) + text[cut:])
    return entries


async def dead_count(raw: aioredis.Redis, prefix: str) -> int:
    total = 0
    async for key in raw.scan_iter(match=prefix + "*.dead", count=1000):
        total += await raw.llen(key)
    return total


async def test_malformed_queue_corpus(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str, prefix: str
) -> None:
    entries = corpus(queue_name)
    assert len(entries) >= 250
    async with make() as transport:
        keys = transport.settings.keys
        for i, entry in enumerate(entries):
            await raw.lpush(keys.queue(queue_name), entry)
            if i % 15 == 0:
                await transport.publish(message(i), queue_name)
        valid = {f"valid-{i}" for i in range(0, len(entries), 15)}
        consumer = transport.consume([queue_name], prefetch=50)
        seen: list[str] = []
        while True:
            try:
                delivery = await asyncio.wait_for(anext(consumer), 1.0)
            except TimeoutError:
                if await raw.llen(keys.queue(queue_name)) == 0:
                    break
                continue
            seen.append(str(delivery.message.headers.get("id")))
            await delivery.ack()
        await consumer.cancel()
        assert valid <= set(seen)
        assert len(seen) + await dead_count(raw, prefix) == len(entries) + len(valid)
        assert await raw.hlen(keys.unacked) == 0 and await raw.zcard(keys.unacked_index) == 0
        print(f"\n[corpus] queue: {len(entries)} odd entries, {len(seen) - len(valid)} readable, rest dead-lettered")


async def test_malformed_unacked_corpus(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str, prefix: str
) -> None:
    entries = corpus(queue_name, seed=11)
    async with make(visibility_timeout=1.0) as transport:
        keys = transport.settings.keys
        values: dict[str, bytes] = {}
        for i, entry in enumerate(entries):
            values[f"raw-{i}"] = entry  # not even the [envelope, exchange, routing key] triple
            values[f"triple-{i}"] = b"[" + entry + b', "", "' + queue_name.encode() + b'"]'
        for i in range(0, len(entries), 15):
            values[f"valid-{i}"] = b"[" + redis_envelope.encode(message(i), "", queue_name).encode() + b', "", "'
            values[f"valid-{i}"] += queue_name.encode() + b'"]'
        for tag, value in values.items():
            await raw.hset(keys.unacked, tag, value)
        await raw.zadd(keys.unacked_index, dict.fromkeys(values, 1.0))
        restored = await Restorer(transport.ops).sweep()  # must not raise, whatever it meets
        assert await raw.hlen(keys.unacked) == 0 and await raw.zcard(keys.unacked_index) == 0
        back = [json.loads(item) for item in await raw.lrange(keys.queue(queue_name), 0, -1)]
        ids = {str(item["headers"].get("id")) for item in back if isinstance(item.get("headers"), dict)}
        assert {f"valid-{i}" for i in range(0, len(entries), 15)} <= ids
        dead = await dead_count(raw, prefix)
        assert restored + dead == len(values), (restored, dead, len(values))
        print(f"\n[corpus] unacked: {len(values)} entries, {restored} restored, {dead} dead-lettered")
