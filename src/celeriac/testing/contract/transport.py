"""The behaviour every transport must show: one ``async def check_…(make, queue)`` per promise of
`celeriac.transports.base`, all listed in `TRANSPORT_CHECKS`."""

from __future__ import annotations

import asyncio
import time

from celeriac import errors
from celeriac.protocol.message import Message
from celeriac.testing.contract.helpers import (
    TIMEOUT,
    VISIBILITY_TIMEOUT,
    TransportCheck,
    TransportFactory,
    is_pending,
    message,
    next_broadcast,
    next_delivery,
    raises,
    wait_for,
)
from celeriac.transports.base import Transport


async def check_round_trip(make: TransportFactory, queue: str) -> None:
    """Body, content type and encoding, headers and properties arrive exactly as published."""
    sent = Message(
        body=bytes(range(256)),
        content_type="application/x-test",
        content_encoding="binary",
        headers={"task": "t.add", "id": "abc", "retries": 2, "nested": {"a": [1, "b", None]}, "flag": True},
        properties={"correlation_id": "abc", "reply_to": "r", "delivery_mode": 2, "priority": 0},
    )
    async with make() as transport:
        await transport.declare(queue)
        await transport.publish(sent, routing_key=queue)
        consumer = transport.consume([queue], prefetch=1)
        delivery = await next_delivery(consumer)
        got = delivery.message
        assert got.body == sent.body
        assert (got.content_type, got.content_encoding) == (sent.content_type, sent.content_encoding)
        assert dict(got.headers) == dict(sent.headers), got.headers
        for key, value in sent.properties.items():
            assert got.properties.get(key) == value, (key, got.properties)
        assert delivery.queue == queue and delivery.routing_key == queue
        assert delivery.redelivered is False
        assert delivery.delivery_info["routing_key"] == queue
        await delivery.ack()


async def check_ack_removes(make: TransportFactory, queue: str) -> None:
    """An acked message is gone: size 0, and not delivered again after a reconnect."""
    async with make() as transport:
        await transport.declare(queue)
        await transport.publish(message(b"once"), routing_key=queue)
        delivery = await next_delivery(transport.consume([queue], prefetch=1))
        await delivery.ack()
        await delivery.ack()  # a second ack does nothing
        assert await transport.size(queue) == 0
    # Let any lease that wrongly survived the ack run out, then look: the first delivery must be the marker.
    await asyncio.sleep(VISIBILITY_TIMEOUT + 0.2)
    async with make() as transport:
        await transport.publish(message(b"marker"), routing_key=queue)
        delivery = await next_delivery(transport.consume([queue], prefetch=1))
        assert delivery.message.body == b"marker"
        await delivery.ack()


async def check_reject_requeue_redelivers(make: TransportFactory, queue: str) -> None:
    async with make() as transport:
        await transport.declare(queue)
        await transport.publish(message(b"again"), routing_key=queue)
        consumer = transport.consume([queue], prefetch=1)
        first = await next_delivery(consumer)
        await first.reject(requeue=True)
        second = await next_delivery(consumer)
        assert second.message.body == b"again"
        assert second.redelivered is True
        await second.ack()


async def check_reject_drops(make: TransportFactory, queue: str) -> None:
    async with make() as transport:
        await transport.declare(queue)
        await transport.publish(message(b"unwanted"), routing_key=queue)
        consumer = transport.consume([queue], prefetch=1)
        delivery = await next_delivery(consumer)
        await delivery.reject(requeue=False)
        await delivery.ack()  # after a reject: does nothing
        await transport.publish(message(b"marker"), routing_key=queue)
        marker = await next_delivery(consumer)
        assert marker.message.body == b"marker"
        await marker.ack()
        assert await transport.size(queue) == 0


async def check_unacked_comes_back(make: TransportFactory, queue: str) -> None:
    """An un-acked delivery of a closed transport is delivered again (at the latest after the visibility
    timeout), marked redelivered."""
    first = make()
    await first.connect()
    await first.declare(queue)
    await first.publish(message(b"survivor"), routing_key=queue)
    lost = await next_delivery(first.consume([queue], prefetch=1))
    assert lost.redelivered is False
    await first.close()
    async with make() as second:
        delivery = await next_delivery(second.consume([queue], prefetch=1), timeout=VISIBILITY_TIMEOUT + TIMEOUT)
        assert delivery.message.body == b"survivor"
        assert delivery.redelivered is True
        await delivery.ack()


async def check_prefetch_limit(make: TransportFactory, queue: str) -> None:
    """prefetch=2 with 5 messages: exactly 2 are delivered until one is acked, and so on."""
    async with make() as transport:
        await transport.declare(queue)
        for i in range(5):
            await transport.publish(message(str(i).encode()), routing_key=queue)
        consumer = transport.consume([queue], prefetch=2)
        held = [await next_delivery(consumer), await next_delivery(consumer)]
        seen = [d.message.body for d in held]
        while len(seen) < 5:
            pending = asyncio.ensure_future(anext(consumer))
            assert await is_pending(pending), f"a delivery beyond prefetch=2 after {len(seen)}"
            await held.pop(0).ack()
            delivery = await asyncio.wait_for(pending, TIMEOUT)
            held.append(delivery)
            seen.append(delivery.message.body)
        assert sorted(seen) == [b"0", b"1", b"2", b"3", b"4"]
        for delivery in held:
            await delivery.ack()
        assert await transport.size(queue) == 0


async def check_order(make: TransportFactory, queue: str) -> None:
    """One queue is first-in first-out; with several, the earlier queue is served first (where the broker
    orders queues: `TransportFactory.queue_order`)."""
    other = f"{queue}.later"
    async with make() as transport:
        for name in (queue, other):
            await transport.declare(name)
        await transport.publish(message(b"later"), routing_key=other)
        for i in range(3):
            await transport.publish(message(f"m{i}".encode()), routing_key=queue)
        consumer = transport.consume([queue, other], prefetch=1)
        bodies = []
        for _ in range(4):
            delivery = await next_delivery(consumer)
            bodies.append(delivery.message.body)
            await delivery.ack()
        if make.queue_order:
            assert bodies == [b"m0", b"m1", b"m2", b"later"], bodies
        else:
            assert [b for b in bodies if b != b"later"] == [b"m0", b"m1", b"m2"] and b"later" in bodies, bodies


async def check_priority(make: TransportFactory, queue: str) -> None:
    """Messages waiting together come out in the broker's priority order."""
    async with make() as transport:
        await transport.declare(queue)
        for priority in (0, 9, 5):
            sent = Message(body=str(priority).encode(), properties={"priority": priority})
            await transport.publish(sent, routing_key=queue)
        await wait_for(lambda: _size_is(transport, queue, 3), what="3 messages ready")
        consumer = transport.consume([queue], prefetch=1)
        bodies = []
        for _ in range(3):
            delivery = await next_delivery(consumer)
            bodies.append(delivery.message.body)
            await delivery.ack()
        expected = [b"9", b"5", b"0"] if make.higher_priority_first else [b"0", b"5", b"9"]
        assert bodies == expected, bodies


async def check_size_and_purge(make: TransportFactory, queue: str) -> None:
    """size counts waiting messages, not delivered ones; purge deletes the waiting ones and counts them."""
    async with make() as transport:
        await transport.declare(queue)
        assert await transport.size(queue) == 0
        for i in range(4):
            await transport.publish(message(str(i).encode()), routing_key=queue)
        await wait_for(lambda: _size_is(transport, queue, 4), what="size 4")
        delivery = await next_delivery(transport.consume([queue], prefetch=1))
        await wait_for(lambda: _size_is(transport, queue, 3), what="size 3 with one delivered")
        assert await transport.purge(queue) == 3
        assert await transport.size(queue) == 0
        await delivery.ack()
        assert await transport.purge(queue) == 0


async def check_broadcast(make: TransportFactory, queue: str) -> None:
    """A broadcast reaches every current subscriber of its channel, not later ones nor other channels."""
    channel, elsewhere = f"{queue}.bcast", f"{queue}.other"
    async with make() as sender, make() as receiver:
        first = await receiver.subscribe([channel])
        second = await sender.subscribe([channel])
        other = await receiver.subscribe([elsewhere])
        await sender.fanout(channel, message(b"one", n=1))
        for subscription in (first, second):
            got_channel, got = await next_broadcast(subscription)
            assert got_channel == channel
            assert got.body == b"one" and dict(got.headers) == {"n": 1}
        late = await receiver.subscribe([channel])
        await sender.fanout(channel, message(b"two"))
        await sender.fanout(elsewhere, message(b"three"))
        assert (await next_broadcast(late))[1].body == b"two"  # "one" was before it subscribed
        assert (await next_broadcast(other))[1].body == b"three"  # never "one" nor "two"
        await late.close()
        await late.close()


async def check_wildcard_subscription(make: TransportFactory, queue: str) -> None:
    """A subscribed name with ``*`` (or ``#``) receives every channel it matches, and only those."""
    exchange = f"{queue}ev"
    async with make() as sender, make() as receiver:
        star = await receiver.subscribe([f"{exchange}/worker.*"])
        hash_ = await receiver.subscribe([f"{exchange}/#"])
        await sender.fanout(f"{exchange}/task.multi", message(b"task"))
        await sender.fanout(f"{exchange}/worker.heartbeat", message(b"beat"))
        got_channel, got = await next_broadcast(star)
        assert (got_channel, got.body) == (f"{exchange}/worker.heartbeat", b"beat")
        assert [(await next_broadcast(hash_))[1].body for _ in range(2)] == [b"task", b"beat"]


async def check_bindings(make: TransportFactory, queue: str) -> None:
    """A named exchange routes through its bindings (none: the message is dropped); delete removes the queue."""
    reply_queue, exchange = f"{queue}.reply", f"{queue}.replies"
    async with make() as transport, make() as publisher:
        await transport.bind(reply_queue, exchange, "key-1")
        await transport.bind(reply_queue, exchange, "key-1")  # binding twice is binding once
        await publisher.publish(message(b"routed"), "key-1", exchange)
        await publisher.publish(message(b"unroutable"), "key-2", exchange)
        consumer = transport.consume([reply_queue], prefetch=0)
        delivery = await next_delivery(consumer)
        assert delivery.message.body == b"routed" and delivery.queue == reply_queue
        assert (delivery.exchange, delivery.routing_key) == (exchange, "key-1")
        await delivery.ack()
        await consumer.cancel()  # a live consumer may take what is published next (AMQP pushes)
        assert await transport.size("key-2") == 0 and await transport.size(reply_queue) == 0
        await publisher.publish(message(b"left over"), "key-1", exchange)
        await wait_for(lambda: _size_is(transport, reply_queue, 1), what="one message waiting")
        await transport.delete(reply_queue)
        assert await transport.size(reply_queue) == 0
        await publisher.publish(message(b"after delete"), "key-1", exchange)  # no binding left: dropped
        assert await transport.size(reply_queue) == 0
        await transport.delete(reply_queue)  # deleting twice does nothing


async def check_close(make: TransportFactory, queue: str) -> None:
    """close ends consumers and subscriptions, may be called twice; any use after it raises."""
    transport = make()
    await transport.connect()
    await transport.declare(queue)
    consumer = transport.consume([queue], prefetch=1)
    subscription = await transport.subscribe([f"{queue}.bcast"])
    waiting = [asyncio.ensure_future(anext(consumer)), asyncio.ensure_future(anext(subscription))]
    assert await is_pending(waiting[0], 0.05)
    await transport.close()
    await transport.close()
    for task in waiting:
        with raises(StopAsyncIteration):
            await asyncio.wait_for(task, TIMEOUT)
    with raises(errors.TransportClosed):
        await transport.publish(message(b"late"), routing_key=queue)
    with raises(errors.TransportClosed):
        await anext(transport.consume([queue], prefetch=1))
    with raises(errors.TransportClosed):
        await transport.fanout(f"{queue}.bcast", message(b"late"))
    with raises(errors.TransportClosed):
        await transport.subscribe([f"{queue}.bcast"])
    with raises(errors.TransportClosed):
        await transport.size(queue)
    with raises(errors.TransportClosed):
        await transport.purge(queue)
    with raises(errors.TransportClosed):
        await transport.declare(queue)


async def check_cancel(make: TransportFactory, queue: str) -> None:
    """cancel wakes a pending __anext__ with StopAsyncIteration; a delivery in hand can still be acked."""
    async with make() as transport:
        await transport.declare(queue)
        await transport.publish(message(b"in hand"), routing_key=queue)
        consumer = transport.consume([queue], prefetch=2)
        delivery = await next_delivery(consumer)
        pending = asyncio.ensure_future(anext(consumer))
        assert await is_pending(pending, 0.05)
        await consumer.cancel()
        with raises(StopAsyncIteration):
            await asyncio.wait_for(pending, TIMEOUT)
        await delivery.ack()
        await transport.publish(message(b"marker"), routing_key=queue)
        marker = await next_delivery(transport.consume([queue], prefetch=1))
        assert marker.message.body == b"marker"
        await marker.ack()


async def check_add_queue(make: TransportFactory, queue: str) -> None:
    other = f"{queue}.added"
    async with make() as transport:
        await transport.declare(queue)
        consumer = transport.consume([queue], prefetch=1)
        await consumer.add_queue(other)
        assert consumer.queues == (queue, other)
        await transport.publish(message(b"there"), routing_key=other)
        delivery = await next_delivery(consumer)
        assert delivery.message.body == b"there" and delivery.queue == other
        await delivery.ack()
        await consumer.remove_queue(other)
        assert list(consumer.queues) == [queue]


async def check_concurrent_acks(make: TransportFactory, queue: str) -> None:
    """Many deliveries acked from concurrent tasks: each message is delivered once, and all are gone."""
    count = 60
    async with make() as transport:
        await transport.declare(queue)
        await asyncio.gather(*(transport.publish(message(b"%d" % i), routing_key=queue) for i in range(count)))
        consumer = transport.consume([queue], prefetch=16)
        seen: list[bytes] = []
        acks: list[asyncio.Task[None]] = []
        while len(seen) < count:
            delivery = await next_delivery(consumer)
            seen.append(delivery.message.body)
            acks.append(asyncio.create_task(delivery.ack()))
        await asyncio.gather(*acks)
        assert sorted(seen) == sorted(b"%d" % i for i in range(count))
        assert await transport.size(queue) == 0


async def check_delayed_delivery(make: TransportFactory, queue: str) -> None:
    """With has_delayed_delivery, a not_before message is not delivered early; later ones pass it."""
    async with make() as transport:
        if not transport.has_delayed_delivery:
            return
        await transport.declare(queue)
        not_before = time.time() + 0.5
        await transport.publish(message(b"delayed"), routing_key=queue, not_before=not_before)
        await transport.publish(message(b"now"), routing_key=queue)
        consumer = transport.consume([queue], prefetch=2)
        first = await next_delivery(consumer)
        assert first.message.body == b"now"
        second = await next_delivery(consumer)
        assert second.message.body == b"delayed"
        assert time.time() >= not_before, "delivered before not_before"
        for delivery in (first, second):
            await delivery.ack()


async def check_publish_many(make: TransportFactory, queue: str) -> None:
    """`Transport.publish_many` returns once the broker holds every message; each queue keeps their order."""
    other = f"{queue}.many"
    async with make() as transport:
        for name in (queue, other):
            await transport.declare(name)
        items = [(message(f"m{i}".encode()), queue if i % 3 else other, "", None) for i in range(30)]
        await transport.publish_many(items)
        assert await transport.size(queue) == 20 and await transport.size(other) == 10
        consumer = transport.consume([queue], prefetch=1)
        bodies = []
        for _ in range(20):
            delivery = await next_delivery(consumer)
            bodies.append(delivery.message.body)
            await delivery.ack()
        assert bodies == [f"m{i}".encode() for i in range(30) if i % 3], bodies
        await transport.purge(other)


async def _size_is(transport: Transport, queue: str, expected: int) -> bool:
    return await transport.size(queue) == expected


TRANSPORT_CHECKS: tuple[TransportCheck, ...] = (
    check_round_trip,
    check_ack_removes,
    check_reject_requeue_redelivers,
    check_reject_drops,
    check_unacked_comes_back,
    check_prefetch_limit,
    check_order,
    check_publish_many,
    check_priority,
    check_size_and_purge,
    check_broadcast,
    check_wildcard_subscription,
    check_bindings,
    check_close,
    check_cancel,
    check_add_queue,
    check_concurrent_acks,
    check_delayed_delivery,
)
