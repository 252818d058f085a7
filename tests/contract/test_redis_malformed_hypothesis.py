"""Malformed raw entries in a Redis queue, generated with hypothesis: no crash, no valid message lost or repeated.

Issue 10 (tests): a corpus of generated malformed input on every transport. Each example pushes up to five raw
entries with LPUSH (arbitrary bytes, arbitrary JSON, a kombu envelope with one field replaced by an odd value:
NaN, infinities, huge ints, wrong types; a valid envelope with bytes that are not UTF-8) around two valid messages
published by the transport. The consumer delivers each valid message exactly once, every entry is delivered or
dead-lettered to ``<queue>.dead``, and after the acks nothing is left in ``unacked``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celeriac.protocol.message import Message
from celeriac.transports.redis import envelope as redis_envelope
from celeriac.transports.redis.transport import RedisTransport

pytestmark = pytest.mark.redis

STATS = {"examples": 0, "entries": 0, "readable": 0, "dead": 0}
FIELDS = [
    ("body",), ("content-type",), ("content-encoding",), ("headers",), ("properties",), ("properties", "priority"),
    ("properties", "delivery_tag"), ("properties", "delivery_info"), ("properties", "body_encoding"),
    ("headers", "eta"), ("headers", "expires"), ("headers", "id"), ("headers", "task"),
    ("properties", "delivery_info", "routing_key"), ("properties", "delivery_info", "exchange"),
]  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
ODD = st.one_of(
    st.sampled_from([None, 0, -1, 2**70, -(2**70), 2**200, 1.5, math.nan, math.inf, -math.inf, "", "\udcff", True]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**100), max_value=2**100),
    st.text(max_size=12),
    JSON,
)
NOT_UTF8 = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xfe\xff", b"\x80\x80", b"\xf4\x90\x80\x80"])


def valid(n: int) -> Message:
    return Message(
        body=b'[[%d], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]' % n,
        headers={"lang": "py", "task": "tests.add", "id": f"valid-{n}"},
        properties={"correlation_id": f"valid-{n}", "reply_to": "", "delivery_mode": 2, "priority": 0},
    )


def base_envelope(queue: str) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(redis_envelope.encode(valid(0), "", queue))
    fields["headers"]["id"] = "odd"
    return fields


@st.composite
def odd_envelope(draw: st.DrawFn, queue: str, tag: str) -> bytes:
    """A valid envelope with one field (or a field of a nested object) replaced by an odd value."""
    fields = base_envelope(queue)
    fields["properties"]["delivery_tag"] = tag
    path = draw(st.sampled_from(FIELDS))
    target = fields
    for key in path[:-1]:
        target = target[key] if isinstance(target.get(key), dict) else target.setdefault(key, {})
    target[path[-1]] = draw(ODD)
    return json.dumps(fields).encode("utf-8", "surrogatepass")


@st.composite
def not_utf8_envelope(draw: st.DrawFn, queue: str, tag: str) -> bytes:
    fields = base_envelope(queue)
    fields["properties"]["delivery_tag"] = tag
    text = json.dumps(fields).encode()
    cut = draw(st.integers(min_value=0, max_value=len(text)))
    return text[:cut] + draw(NOT_UTF8) + text[cut:]


@st.composite
def entry(draw: st.DrawFn, queue: str, n: int) -> bytes:
    tag = f"odd-{n}"
    kind = draw(st.sampled_from(["bytes", "json", "envelope", "envelope", "not-utf8"]))
    if kind == "bytes":
        return draw(st.binary(max_size=120))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    if kind == "envelope":
        return draw(odd_envelope(queue, tag))
    return draw(not_utf8_envelope(queue, tag))


@st.composite
def entries(draw: st.DrawFn) -> list[bytes]:
    """Five malformed entries; the queue name is fixed by the test, the tags are distinct."""
    return [draw(entry("Q", n)) for n in range(5)]


async def dead_count(client: aioredis.Redis, prefix: str) -> int:
    total = 0
    async for key in client.scan_iter(match=prefix + "*.dead", count=1000):
        total += await client.llen(key)
    return total


async def drain(make: Callable[..., RedisTransport], url: str, prefix: str, queue: str, bad: list[bytes]) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        async with make() as transport:
            keys = transport.settings.keys
            await transport.publish(valid(1), queue)
            for item in bad[:3]:
                await client.lpush(keys.queue(queue), item)
            await transport.publish(valid(2), queue)
            for item in bad[3:]:
                await client.lpush(keys.queue(queue), item)
            dead_before = await dead_count(client, prefix)
            consumer = transport.consume([queue], prefetch=4)
            seen: list[str] = []
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                assert asyncio.get_running_loop().time() < deadline, "entries were neither delivered nor dead-lettered"
                try:
                    delivery = await asyncio.wait_for(anext(consumer), 0.3)
                except TimeoutError:
                    if await client.llen(keys.queue(queue)) == 0:
                        break
                    continue
                headers = delivery.message.headers
                seen.append(str(headers.get("id")) if isinstance(headers, dict) else "?")
                await delivery.ack()
            await consumer.cancel()
            assert seen.count("valid-1") == 1 and seen.count("valid-2") == 1, seen
            dead = await dead_count(client, prefix) - dead_before
            assert len(seen) + dead == len(bad) + 2, (seen, dead, bad)
            assert await client.hlen(keys.unacked) == 0 and await client.zcard(keys.unacked_index) == 0
            STATS["readable"] += len(seen) - 2
            STATS["dead"] += dead
    finally:
        await client.aclose()


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=entries())
def test_generated_malformed_entries_are_dead_lettered_and_valid_ones_delivered_once(
    make: Callable[..., RedisTransport], redis_url: str, prefix: str, bad: list[bytes]
) -> None:
    STATS["examples"] += 1
    queue = f"hq{STATS['examples']}"
    bad = [item.replace(b'"Q"', json.dumps(queue).encode()) for item in bad]
    asyncio.run(drain(make, redis_url, prefix, queue, bad))
    STATS["entries"] += len(bad)


def test_the_generated_corpus_is_big_enough() -> None:
    """Runs after the corpus (file order): at least 250 generated entries went through."""
    print(f"\n[corpus] redis hypothesis: {STATS}")
    assert STATS["examples"] == 0 or STATS["entries"] >= 250, STATS
