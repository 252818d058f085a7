"""RabbitMQ-only promises of the AMQP transport, on a real broker in this run's own virtual host: confirms and
their errors, channel-error isolation, recovery after the broker closes every connection, dead channels'
deliveries, priorities, quorum queues with a delivery limit, native delayed delivery."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from celeriac.errors import ConnectionLost, TransportError
from celeriac.testing.contract.helpers import is_pending, message, next_delivery, wait_for
from celeriac.transports.amqp.consumer import AMQPConsumer
from celeriac.transports.amqp.transport import AMQPTransport
from celeriac.transports.base import TransportOptions

pytestmark = pytest.mark.amqp

Make = Callable[..., AMQPTransport]


@pytest.fixture
def make(amqp_url: str) -> Make:
    """AMQP transports with the given AMQP settings (``broker_settings``) and delivery limit."""

    def factory(max_deliveries: int = 10, **settings: Any) -> AMQPTransport:
        return AMQPTransport(amqp_url, TransportOptions(max_deliveries=max_deliveries, broker_settings=settings))

    return factory


def queues(ctl: Callable[..., str], vhost: str) -> dict[str, str]:
    """``rabbitmqctl list_queues``: name -> the rest of its line."""
    out = ctl("list_queues", "-q", "-p", vhost, "name", "durable", "auto_delete", "exclusive", "arguments")
    rows = [line.split("\t", 1) for line in out.splitlines() if "\t" in line]
    return {name: rest for name, rest in rows if name != "name"}


async def test_unroutable_and_missing_exchange_are_clear_errors(make: Make, queue_name: str) -> None:
    async with make() as transport:
        with pytest.raises(TransportError, match=r"unroutable.*routing key 'no-such-queue"):
            await transport.publish(message(b"x"), routing_key=f"no-such-queue-{queue_name}")
        with pytest.raises(TransportError, match=rf"exchange '{queue_name}-nx'.*404 NOT_FOUND"):
            await transport.publish(message(b"x"), routing_key="k", exchange=f"{queue_name}-nx")
        await transport.declare(queue_name)  # the closed channel was replaced: publishing goes on
        await asyncio.gather(*(transport.publish(message(b"%d" % i), routing_key=queue_name) for i in range(200)))
        assert await transport.size(queue_name) == 200


async def test_refused_declare_is_one_line_and_other_queues_are_served(
    make: Make, queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    quorum, good, forbidden = f"{queue_name}-qq", f"{queue_name}-ok", f"amq.{queue_name}"
    async with make(task_default_queue_type="quorum") as other:
        await other.declare(quorum)  # exists as a quorum queue: a classic declaration is refused
    async with make() as transport:
        with caplog.at_level(logging.ERROR, "celeriac.transports.amqp"):
            for name in (quorum, good, forbidden):
                await transport.declare(name)
        refusals = [r.getMessage() for r in caplog.records]
        assert any(f"queue '{quorum}'" in m and "PRECONDITION_FAILED - inequivalent arg" in m for m in refusals)
        assert any(f"'{forbidden}'" in m and "ACCESS_REFUSED" in m for m in refusals), refusals
        assert all("\n" not in m for m in refusals)
        consumer = transport.consume([forbidden, quorum, good], prefetch=4)
        for name in (quorum, good):
            await transport.publish(message(name.encode()), routing_key=name)
        got = {(await next_delivery(consumer)).message.body for _ in range(2)}
        assert got == {quorum.encode(), good.encode()}
        assert consumer.queues == (quorum, good)


async def test_recovery_after_broker_closes_every_connection(
    make: Make, queue_name: str, amqp_vhost: str, ctl: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    async with make() as transport:
        await transport.declare(queue_name)
        await transport.publish(message(b"held"), routing_key=queue_name)
        consumer = transport.consume([queue_name], prefetch=1)
        held = await next_delivery(consumer)
        ctl("close_all_connections", "--vhost", amqp_vhost, "test: recovery")
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(anext(consumer), 10)
        with caplog.at_level(logging.INFO, "celeriac.transports.amqp"):
            await held.ack()  # its channel is dead: a logged no-op, RabbitMQ delivers it again
        assert any("skipped" in r.getMessage() or "lost with its channel" in r.getMessage() for r in caplog.records)
        await transport.publish(message(b"after"), routing_key=queue_name)  # the publisher reconnects alone
        fresh = transport.consume([queue_name], prefetch=2)
        bodies = {(await next_delivery(fresh)).message.body for _ in range(2)}
        assert bodies == {b"held", b"after"}


async def test_priority_queue_is_declared_with_x_max_priority(
    make: Make, queue_name: str, amqp_vhost: str, ctl: Callable[..., str]
) -> None:
    async with make(task_queue_max_priority=10) as transport:
        await transport.declare(queue_name)
    assert "x-max-priority" in queues(ctl, amqp_vhost)[queue_name]


async def test_quorum_delivery_limit_dead_letters_a_poison_message(
    make: Make, queue_name: str, amqp_vhost: str, ctl: Callable[..., str]
) -> None:
    async with make(max_deliveries=2, task_default_queue_type="quorum") as transport:
        await transport.declare(queue_name)
        await transport.publish(message(b"poison"), routing_key=queue_name)
        consumer = transport.consume([queue_name], prefetch=1)
        deliveries = 0
        while True:
            try:
                delivery = await next_delivery(consumer, timeout=2.0)
            except AssertionError:
                break  # no more deliveries: the limit gave it up
            deliveries += 1
            await delivery.reject(requeue=True)
            assert deliveries <= 5, "the delivery limit did not stop the redeliveries"
        await wait_for(lambda: _size_is(transport, f"{queue_name}.dead", 1), what="the poison message in .dead")
    listed = queues(ctl, amqp_vhost)[queue_name]
    assert "x-delivery-limit" in listed and "quorum" in listed


async def test_native_delayed_delivery_holds_a_countdown_in_the_broker(
    make: Make, queue_name: str, amqp_vhost: str, ctl: Callable[..., str]
) -> None:
    async with make(task_default_queue_type="quorum", task_default_exchange_type="topic") as transport:
        assert transport.has_delayed_delivery
        await transport.declare(queue_name)
        not_before = time.time() + 2.0
        await transport.publish(message(b"later"), routing_key=queue_name, not_before=not_before)
        assert await transport.size(queue_name) == 0
        assert await transport.size("celery_delayed_1") + await transport.size("celery_delayed_0") >= 1
        names = queues(ctl, amqp_vhost)
        assert all(f"celery_delayed_{level}" in names for level in range(28))
        delivery = await next_delivery(transport.consume([queue_name], prefetch=1), timeout=30)
        assert delivery.message.body == b"later" and time.time() >= not_before
        await delivery.ack()


async def test_classic_direct_setup_has_no_delayed_delivery(make: Make) -> None:
    assert not make().has_delayed_delivery  # Celery holds ETAs in the worker for direct exchanges
    assert not make(task_default_queue_type="quorum").has_delayed_delivery


async def _size_is(transport: AMQPTransport, queue: str, expected: int) -> bool:
    return await transport.size(queue) == expected


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
async def test_set_prefetch_widens_the_window_at_once(make: Make, queue_name: str, queue_type: str) -> None:
    """The worker widens the window while it holds ETA tasks: global QoS (classic on RabbitMQ 3) takes a new
    basic.qos at once; per-consumer QoS (quorum) needs new consumers, which the transport makes."""
    async with make(task_default_queue_type=queue_type) as transport:
        await transport.declare(queue_name)
        for i in range(3):
            await transport.publish(message(b"%d" % i), routing_key=queue_name)
        consumer = transport.consume([queue_name], prefetch=1)
        first = await next_delivery(consumer)
        assert isinstance(consumer, AMQPConsumer) and consumer.global_qos is (queue_type == "classic")
        pending = asyncio.ensure_future(anext(consumer))
        assert await is_pending(pending), "a delivery beyond prefetch=1"
        consumer.set_prefetch(3)  # first is still held, un-acked
        second = await asyncio.wait_for(pending, 10)
        third = await next_delivery(consumer)
        assert sorted(d.message.body for d in (first, second, third)) == [b"0", b"1", b"2"]
        for delivery in (first, second, third):
            await delivery.ack()
        await wait_for(lambda: _size_is(transport, queue_name, 0), what="all acked")


async def test_heartbeat_is_broker_heartbeat(make: Make, amqp_url: str) -> None:
    async with make(broker_heartbeat=7) as transport:
        connection = await transport.link.connection()
        assert connection.heartbeat == 7
    async with AMQPTransport(amqp_url + "?heartbeat=3") as transport:  # the URL's option wins
        assert (await transport.link.connection()).heartbeat == 3


async def test_a_header_amqp_cannot_encode_is_a_clear_error(make: Make, queue_name: str) -> None:
    async with make() as transport:
        await transport.declare(queue_name)
        with pytest.raises(TransportError, match="cannot be put in AMQP frames"):
            await transport.publish(message(b"x", blob=b"raw bytes"), routing_key=queue_name)
        await transport.publish(message(b"ok", pair=(1, "a"), nested={"t": (2,)}), routing_key=queue_name)
        delivery = await next_delivery(transport.consume([queue_name], prefetch=1))
        assert dict(delivery.message.headers) == {"pair": [1, "a"], "nested": {"t": [2]}}
        await delivery.ack()
