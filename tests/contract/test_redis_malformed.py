"""Malformed entries in Redis queue lists and in ``unacked`` are dead-lettered with their reason (issue 10 item 2).

An entry whose bytes are not UTF-8, or whose priority is NaN or Infinity, must neither kill the consumer nor
the visibility-timeout restore: it goes to ``<queue>.dead`` (its reason under its delivery tag in
``<queue>.dead.reasons``) and every readable message around it is delivered or restored.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from celeriac.protocol.message import Message
from celeriac.transports.redis.restore import UNROUTABLE_QUEUE, Restorer
from celeriac.transports.redis.transport import RedisTransport

pytestmark = pytest.mark.redis


def message(n: int) -> Message:
    return Message(
        body=b'[[%d], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]' % n,
        headers={"lang": "py", "task": "tests.add", "id": f"task-{n}"},
        properties={"correlation_id": f"task-{n}", "reply_to": "", "delivery_mode": 2, "priority": 0},
    )


def envelope(tag: str, queue: str, priority: str = "0", header: bytes = b"ok") -> bytes:
    """A kombu envelope as raw bytes, with ``priority`` written as is (NaN, Infinity) and a raw header value."""
    return (
        b'{"body": "W1tdLCB7fSwge31d", "content-encoding": "utf-8", "content-type": "application/json", '
        b'"headers": {"lang": "py", "task": "tests.add", "id": "' + tag.encode() + b'", "note": "' + header + b'"}, '
        b'"properties": {"delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "'
        + queue.encode()
        + b'"}, "priority": '
        + priority.encode()
        + b', "body_encoding": "base64", "delivery_tag": "'
        + tag.encode()
        + b'"}}'
    )


MALFORMED = {
    "bad-utf8": {"header": b"\xff\xfe"},
    "nan": {"priority": "NaN"},
    "inf": {"priority": "Infinity"},
    "minus-inf": {"priority": "-Infinity"},
}


async def test_malformed_queue_entries_are_dead_lettered_with_reason(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str
) -> None:
    async with make() as transport:
        keys = transport.settings.keys
        for tag, kind in MALFORMED.items():
            await raw.lpush(keys.queue(queue_name), envelope(tag, queue_name, **kind))  # type: ignore[arg-type]
        await transport.publish(message(1), queue_name)
        consumer = transport.consume([queue_name], prefetch=10)
        delivery = await asyncio.wait_for(anext(consumer), 10)
        assert delivery.message.headers["id"] == "task-1"
        await delivery.ack()
        await consumer.cancel()
        assert await raw.llen(keys.dead_letter(queue_name)) == len(MALFORMED)
        reasons = await raw.hgetall(keys.dead_reasons(queue_name))
        assert sorted(reasons) == sorted(tag.encode() for tag in MALFORMED)
        assert await raw.hlen(keys.unacked) == 0 and await raw.zcard(keys.unacked_index) == 0


async def test_a_header_redis_could_not_read_is_refused_at_publish(
    make: Callable[..., RedisTransport], queue_name: str
) -> None:
    async with make() as transport:
        with pytest.raises(ValueError, match="not valid Unicode"):
            await transport.publish(Message(body=b"[[], {}, {}]", headers={"task": "x", "id": "\udcff"}), queue_name)
        assert await transport.size(queue_name) == 0
        # A character beyond the BMP is valid (written as a surrogate pair) and goes through.
        await transport.publish(
            Message(body=b"[[], {}, {}]", headers={"task": "x", "id": "smile-\U0001f600"}), queue_name
        )
        consumer = transport.consume([queue_name], prefetch=1)
        delivery = await asyncio.wait_for(anext(consumer), 10)
        assert delivery.message.headers["id"] == "smile-\U0001f600"
        await delivery.ack()
        await consumer.cancel()


async def test_restore_survives_every_malformed_unacked_entry(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with make(visibility_timeout=1.0) as transport:
        keys = transport.settings.keys
        entries: dict[str, bytes] = {
            tag: b"[" + envelope(tag, queue_name, **kind) + b', "", "' + queue_name.encode() + b'"]'  # type: ignore[arg-type]
            for tag, kind in MALFORMED.items()
        }
        entries["not-a-triple"] = b'{"hello": 1}'
        entries["not-json"] = b"\xff{{{"
        entries["good"] = b"[" + envelope("good", queue_name) + b', "", "' + queue_name.encode() + b'"]'
        for tag, value in entries.items():
            await raw.hset(keys.unacked, tag, value)
            await raw.zadd(keys.unacked_index, {tag: 1.0})  # long expired: its consumer died long ago
        with caplog.at_level(logging.ERROR, "celeriac.transports.redis"):
            assert await Restorer(transport.ops).sweep() == 1
        assert await raw.hlen(keys.unacked) == 0 and await raw.zcard(keys.unacked_index) == 0
        restored = await raw.lrange(keys.queue(queue_name), 0, -1)
        assert [json.loads(item)["properties"]["delivery_tag"] for item in restored] == ["good"]
        dead: Any = await raw.lrange(keys.dead_letter(queue_name), 0, -1)
        assert sorted(dead) == sorted(entries[tag] for tag in MALFORMED)
        unroutable = await raw.lrange(keys.dead_letter(UNROUTABLE_QUEUE), 0, -1)
        assert sorted(unroutable) == sorted([entries["not-a-triple"], entries["not-json"]])
        reasons = await raw.hgetall(keys.dead_reasons(queue_name))
        assert set(reasons) == {tag.encode() for tag in MALFORMED}
        assert all(reason.startswith(b"cannot restore: ") for reason in reasons.values())
        await raw.delete(keys.dead_letter(UNROUTABLE_QUEUE), keys.dead_reasons(UNROUTABLE_QUEUE))
        assert "cannot be restored" in caplog.text


async def test_restore_lock_is_short_lived_and_renewed_only_by_its_holder(
    make: Callable[..., RedisTransport], raw: aioredis.Redis
) -> None:
    async with make() as transport:
        assert transport.settings.mutex_expire <= 10.0
        ops = transport.ops
        assert await ops.lock("mine")
        assert not await ops.lock("theirs")
        assert not await ops.lock("theirs", renew=True)
        assert await ops.lock("mine", renew=True)
        ttl = await raw.pttl(transport.settings.keys.unacked_mutex)
        assert 0 < ttl <= transport.settings.mutex_expire * 1000
        await ops.unlock("mine")
        assert await ops.lock("theirs")
        await ops.unlock("theirs")


async def test_a_tag_and_queue_that_are_not_utf8_are_buried_byte_for_byte(
    make: Callable[..., RedisTransport], raw: aioredis.Redis, queue_name: str
) -> None:
    # Found by the hypothesis corpus: a tag read leniently keeps its undecodable byte as a lone surrogate, which
    # redis-py's strict encoding refused, so the bury raised instead of dead-lettering.
    async with make() as transport:
        keys = transport.settings.keys
        queue = queue_name + "\udcff"
        await raw.hset(keys.unacked, b"tag\xff", b"raw\xff")  # as the fetch left it: delivered, not settled
        assert await transport.ops.bury("tag\udcff", b"raw\xff", queue, "unreadable \udcff")
        dead = keys.dead_letter(queue).encode("utf-8", "surrogateescape")
        assert await raw.lrange(dead, 0, -1) == [b"raw\xff"]
        reasons = await raw.hgetall(keys.dead_reasons(queue).encode("utf-8", "surrogateescape"))
        assert reasons == {b"tag\xff": b"unreadable \\udcff"}
        assert await raw.hlen(keys.unacked) == 0
