# kombu and Celery have no type hints; calling them is the point of this module.
# mypy: disallow-untyped-calls=False
"""celeriac's Redis transport and result backend against real kombu and Celery, in the same Redis database.

Both sides use the same ``global_keyprefix`` (unique per test), so the tests see only their own keys; all keys
under it are deleted afterwards. kombu and Celery are synchronous: the calls that block run in a thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from celery import Celery  # type: ignore[import-untyped]
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.messaging import Producer

from celeriac.backends.base import BackendOptions, TaskMeta
from celeriac.backends.redis.backend import RedisBackend
from celeriac.protocol import decode_task, encode_task, normalize_accept
from celeriac.protocol.message import Message, TaskMessage
from celeriac.transports.redis import envelope as redis_envelope
from celeriac.transports.redis.delivery import RedisDelivery
from celeriac.transports.redis.transport import RedisTransport

pytestmark = pytest.mark.redis


async def eventually(predicate: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
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


@pytest.fixture
def kombu(redis_url: str, prefix: str, raw: aioredis.Redis) -> Iterator[Connection]:
    with Connection(redis_url, transport_options={"global_keyprefix": prefix}) as connection:
        yield connection


@pytest.fixture
def celery_app(redis_url: str, prefix: str, raw: aioredis.Redis) -> Iterator[Celery]:
    app = Celery(
        "interop",
        broker=redis_url,
        backend=redis_url,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
    )
    yield app
    app.close()


def task_message(**fields: Any) -> Message:
    """A real protocol-2 task message, with values that exercise kombu JSON and non-ASCII text."""
    task = TaskMessage(
        id=str(uuid.uuid4()),
        task="tests.add",
        args=(2, "ü/é"),
        kwargs={"when": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)},
        reply_to="d8610a18-5af0-3006-bd2b-8cca81805b84",
        origin="gen1@client-host",
        extra_headers={"custom_hdr": "x/ÿ"},
        **fields,
    )
    return encode_task(task)


def kombu_publish(connection: Connection, message: Message, queue: str, exchange: str = "") -> None:
    """Publish ``message`` the way Celery's client does (anonymous exchange, routing key = queue)."""
    properties = dict(message.properties)
    expiration = properties.pop("expiration", None)
    Producer(connection).publish(
        message.body,
        routing_key=queue,
        exchange=exchange,
        headers=dict(message.headers),
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        expiration=int(expiration) / 1000 if expiration is not None else None,
        **properties,
    )


def without_tag(raw: bytes | str, tag: str) -> str:
    text = raw.decode() if isinstance(raw, bytes) else raw
    assert text.count(tag) == 1
    return text.replace(tag, "TAG")


# -- the envelope --------------------------------------------------------------------------------------------


async def test_envelope_is_byte_identical_to_kombus(
    transport: RedisTransport, kombu: Connection, raw: aioredis.Redis, queue_name: str
) -> None:
    message = task_message(priority=7, expires=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=600))
    assert "expiration" in message.properties
    kombu_publish(kombu, message, queue_name)
    await transport.publish(message, queue_name)
    key = transport.settings.keys.queue(queue_name, 7)
    assert key == f"{queue_name}:{queue_name}\x06\x166"
    ours, theirs = await raw.lrange(key, 0, -1)  # LPUSH: ours is on the left
    our_fields, their_fields = json.loads(ours), json.loads(theirs)
    assert (
        list(our_fields) == list(their_fields) == ["body", "content-encoding", "content-type", "headers", "properties"]
    )
    assert list(our_fields["properties"]) == list(their_fields["properties"])
    assert without_tag(ours, our_fields["properties"]["delivery_tag"]) == without_tag(
        theirs, their_fields["properties"]["delivery_tag"]
    )
    uuid.UUID(our_fields["properties"]["delivery_tag"], version=4)


async def test_celery_client_message_republished_unchanged(
    transport: RedisTransport, celery_app: Celery, raw: aioredis.Redis, queue_name: str
) -> None:
    celery_app.send_task("tests.add", (2, 3), queue=queue_name, countdown=10, expires=600, headers={"h": "x"})
    key = transport.settings.keys.queue(queue_name)
    (theirs,) = await raw.lrange(key, 0, -1)
    envelope = redis_envelope.decode(theirs)
    await raw.delete(key)
    await transport.publish(envelope.message, envelope.routing_key, envelope.exchange)
    (ours,) = await raw.lrange(key, 0, -1)
    assert without_tag(ours, json.loads(ours)["properties"]["delivery_tag"]) == without_tag(
        theirs, envelope.delivery_tag
    )


async def test_kombu_reads_what_celeriac_publishes(
    transport: RedisTransport, kombu: Connection, raw: aioredis.Redis, queue_name: str
) -> None:
    message = task_message(priority=3)
    await transport.publish(message, queue_name)
    simple = kombu.SimpleQueue(queue_name)
    got = simple.get(timeout=5)
    assert got.body == message.body
    assert got.headers == dict(message.headers)
    assert (got.content_type, got.content_encoding) == (message.content_type, message.content_encoding)
    for name in ("correlation_id", "reply_to", "delivery_mode", "priority"):
        assert got.properties[name] == message.properties[name]
    assert got.delivery_info["exchange"] == "" and got.delivery_info["routing_key"] == queue_name
    task = decode_task(
        Message(got.body, got.content_type, got.content_encoding, got.headers, got.properties),
        normalize_accept(["json"]),
    )
    assert task.args == (2, "ü/é") and task.kwargs["when"].year == 2024
    got.ack()
    simple.close()
    assert await raw.hlen(transport.settings.keys.unacked) == 0


async def test_celeriac_reads_what_kombu_and_celery_publish(
    transport: RedisTransport, kombu: Connection, celery_app: Celery, queue_name: str
) -> None:
    message = task_message(priority=0)
    kombu_publish(kombu, message, queue_name)
    result = celery_app.send_task("tests.add", (2, 3), queue=queue_name, priority=5, headers={"h": "x"})
    consumer = transport.consume([queue_name], prefetch=2)
    first = await anext(consumer)
    assert first.message.body == message.body and first.message.headers == message.headers
    assert (first.exchange, first.routing_key, first.queue) == ("", queue_name, queue_name)
    assert dict(first.message.properties) == {**message.properties, "priority": 0}
    second = await anext(consumer)
    task = decode_task(second.message, normalize_accept(["json"]))
    assert (task.id, task.task, task.args, task.priority) == (result.id, "tests.add", (2, 3), 5)
    assert task.extra_headers["h"] == "x"
    for delivery in (first, second):
        await delivery.ack()
    await consumer.cancel()


# -- acknowledgement emulation -------------------------------------------------------------------------------


async def test_unacked_entry_is_what_kombu_writes(
    transport: RedisTransport, kombu: Connection, raw: aioredis.Redis, queue_name: str
) -> None:
    keys = transport.settings.keys
    message = task_message()
    kombu_publish(kombu, message, queue_name)
    kombu_publish(kombu, message, queue_name)
    simple = kombu.SimpleQueue(queue_name)
    theirs = simple.get(timeout=5)  # kombu records its delivery in unacked
    consumer = transport.consume([queue_name], prefetch=1)
    ours = await anext(consumer)
    their_entry = await raw.hget(keys.unacked, theirs.delivery_tag)
    our_entry = await raw.hget(keys.unacked, ours.delivery_tag)
    assert their_entry is not None and our_entry is not None
    assert without_tag(our_entry, ours.delivery_tag) == without_tag(their_entry, theirs.delivery_tag)
    their_score = await raw.zscore(keys.unacked_index, theirs.delivery_tag)
    our_score = await raw.zscore(keys.unacked_index, ours.delivery_tag)
    assert their_score and our_score and abs(our_score - their_score) < 5
    theirs.ack()
    await ours.ack()
    simple.close()
    await consumer.cancel()
    assert await raw.hlen(keys.unacked) == 0 and await raw.zcard(keys.unacked_index) == 0


# The child may be killed in the middle of its start-up restore sweep, holding the restore lock: a 1 s lock
# life keeps that from blocking the restore this test waits for.
CONSUMER_SCRIPT = """
import asyncio, sys
from celeriac.transports.base import TransportOptions
from celeriac.transports.redis.transport import RedisTransport

async def main():
    url, prefix, queue = sys.argv[1:4]
    options = TransportOptions(extra={"global_keyprefix": prefix, "unacked_mutex_expire": 1})
    transport = RedisTransport(url, options)
    await transport.connect()
    delivery = await anext(transport.consume([queue], prefetch=1))
    print(delivery.delivery_tag, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_kombu_restores_a_dead_celeriac_consumers_message(
    transport: RedisTransport, redis_url: str, prefix: str, raw: aioredis.Redis, queue_name: str
) -> None:
    message = task_message()
    await transport.publish(message, queue_name)
    child = subprocess.Popen(
        [sys.executable, "-c", CONSUMER_SCRIPT, redis_url, prefix, queue_name], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        tag = (await asyncio.to_thread(child.stdout.readline)).strip()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert await raw.hexists(transport.settings.keys.unacked, tag)
    options = {"global_keyprefix": prefix, "visibility_timeout": 1}
    with Connection(redis_url, transport_options=options) as connection:
        channel = connection.default_channel

        def restored() -> bool:
            channel.qos.restore_visible(interval=1)
            return bool(channel.client.llen(queue_name) == 1)

        await eventually(restored)
        got = connection.SimpleQueue(queue_name).get(timeout=5)
        assert got.body == message.body and got.delivery_tag == tag
        assert got.headers["redelivered"] is True and got.delivery_info["redelivered"] is True
        got.ack()


async def test_celeriac_restores_a_dead_kombu_consumers_message(
    make: Callable[..., RedisTransport], kombu: Connection, raw: aioredis.Redis, queue_name: str
) -> None:
    message = task_message()
    kombu_publish(kombu, message, queue_name)
    taken = kombu.SimpleQueue(queue_name).get(timeout=5)  # never acked: its consumer "dies" holding it
    async with make(visibility_timeout=1.0, unacked_restore_interval=0.1) as transport:
        consumer = transport.consume([queue_name], prefetch=1)
        delivery = await asyncio.wait_for(anext(consumer), 10)
        assert delivery.delivery_tag == taken.delivery_tag and delivery.message.body == message.body
        assert delivery.redelivered and delivery.message.headers["redelivered"] is True
        assert isinstance(delivery, RedisDelivery) and delivery.delivery_count == 1  # kombu does not count
        await delivery.ack()
        await consumer.cancel()
    kombu.release()  # kombu's own restore on close finds nothing left to restore
    assert await raw.llen(f"{queue_name}:{queue_name}") == 0


# -- fanout --------------------------------------------------------------------------------------------------


async def test_fanout_channels_are_kombus(
    transport: RedisTransport, kombu: Connection, celery_app: Celery, queue_name: str
) -> None:
    events = await transport.subscribe(["celeryev/#"])
    control = await transport.subscribe(["celery.pidbox"])
    body = json.dumps({"type": "worker-heartbeat"}).encode()
    Producer(kombu, exchange=Exchange("celeryev", type="fanout")).publish(
        body,
        routing_key="worker.heartbeat",
        headers={"hostname": "w1@host"},
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=1,
    )
    channel, got = await asyncio.wait_for(anext(events), 5)
    assert channel == "celeryev/worker.heartbeat" and got.body == body and got.headers == {"hostname": "w1@host"}

    await asyncio.to_thread(celery_app.control.broadcast, "ping", reply=False)
    channel, got = await asyncio.wait_for(anext(control), 5)
    assert channel == "celery.pidbox" and json.loads(got.body)["method"] == "ping"

    # and the other way: a kombu fanout consumer receives celeriac's broadcast
    received: list[Any] = []
    queue = Queue(f"{queue_name}-ev", Exchange("celeryev", type="fanout"), routing_key="task.#", auto_delete=True)
    with kombu.Consumer(queue, callbacks=[lambda body, m: received.append((m.delivery_info, m.headers))]):
        event = Message(body=b'{"type": "task-sent"}', headers={"hostname": "me"}, properties={"delivery_mode": 1})
        for _ in range(50):
            await transport.fanout("celeryev/task.sent", event)
            try:
                kombu.drain_events(timeout=0.1)
            except TimeoutError:
                continue
            if received:
                break
    info, headers = received[0]
    assert info["exchange"] == "celeryev" and info["routing_key"] == "task.sent" and headers == {"hostname": "me"}
    await events.close()
    await control.close()


# -- result backend ------------------------------------------------------------------------------------------


@pytest.fixture
async def backend(redis_url: str, prefix: str, raw: aioredis.Redis) -> AsyncIterator[RedisBackend]:
    async with RedisBackend(redis_url, BackendOptions(extra={"global_keyprefix": prefix})) as b:
        yield b


async def subscribed(raw: aioredis.Redis, channel: str) -> bool:
    """True once someone listens on ``channel`` (PUBSUB NUMSUB)."""
    ((_, count),) = await raw.pubsub_numsub(channel)
    return bool(count)


def meta(task_id: str, status: str, result: Any) -> TaskMeta:
    return TaskMeta(
        task_id=task_id,
        status=status,
        result=result,
        traceback=None,
        children=[],
        date_done=dt.datetime.now(dt.UTC).isoformat(),
    )


async def test_celery_reads_celeriac_results(backend: RedisBackend, celery_app: Celery, raw: aioredis.Redis) -> None:
    ok, bad, later = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    await backend.store(meta(ok, "SUCCESS", {"when": dt.date(2024, 1, 2)}))
    failure = {"exc_type": "ValueError", "exc_message": ["kaboom"], "exc_module": "builtins"}
    await backend.store(meta(bad, "FAILURE", failure))
    assert celery_app.AsyncResult(ok).get(timeout=5) == {"when": dt.date(2024, 1, 2)}
    with pytest.raises(ValueError, match="kaboom"):
        celery_app.AsyncResult(bad).get(timeout=5)
    assert await raw.ttl(backend.key(ok)) == 86400
    # Celery waits through pub/sub: it must see a result celeriac stores while it waits
    waiting = asyncio.ensure_future(asyncio.to_thread(celery_app.AsyncResult(later).get, timeout=10))
    await eventually(lambda: subscribed(raw, backend.key(later)))
    await backend.store(meta(later, "SUCCESS", 7))
    assert await waiting == 7


async def test_celeriac_reads_celery_results(backend: RedisBackend, celery_app: Celery, raw: aioredis.Redis) -> None:
    done, later = str(uuid.uuid4()), str(uuid.uuid4())
    celery_app.backend.store_result(done, {"x": [1, 2]}, "SUCCESS")
    stored = await backend.get_meta(done)
    assert stored["status"] == "SUCCESS" and stored["result"] == {"x": [1, 2]} and stored["task_id"] == done
    waiting = asyncio.ensure_future(backend.wait(later, timeout=10))
    await eventually(lambda: subscribed(raw, backend.key(later)))
    await asyncio.to_thread(celery_app.backend.store_result, later, None, "STARTED")
    await asyncio.to_thread(celery_app.backend.store_result, later, 42, "SUCCESS")
    assert (await waiting)["result"] == 42
    # a SUCCESS Celery stored is never replaced
    await backend.store(meta(done, "FAILURE", None))
    assert (await backend.get_meta(done))["status"] == "SUCCESS"
