"""celeriac's own AMQP client (`celeriac._amqp.wire`) against the real RabbitMQ, in this run's virtual host.

What the transport contract suite does not reach directly: bodies over many frames, confirms RabbitMQ acks with
``multiple``, a consumer RabbitMQ cancels, a channel error that leaves the other channels working, and a link
that goes silent (a TCP relay of the test's own stops forwarding) detected by heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator

import pytest

from celeriac._amqp.wire.channel import Delivered
from celeriac._amqp.wire.codec import Properties
from celeriac._amqp.wire.connection import Connection, connect
from celeriac._amqp.wire.errors import ChannelClosed, LinkError

pytestmark = pytest.mark.amqp


@contextlib.asynccontextmanager
async def opened(vhost: str, port: int = 5672, heartbeat: int = 0) -> AsyncIterator[Connection]:
    connection = await asyncio.wait_for(
        connect("127.0.0.1", port, login="guest", password="guest", vhost=vhost, heartbeat=heartbeat), 10
    )
    try:
        yield connection
    finally:
        await connection.close()


async def test_a_body_over_many_frames_arrives_whole(amqp_vhost: str) -> None:
    body = bytes(range(256)) * 5000  # 1.28 MB: ten frames of 128 KiB
    queue = f"big-{uuid.uuid4().hex}"
    async with opened(amqp_vhost) as connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.queue_declare(queue, auto_delete=True)
        got: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
        await channel.basic_consume(queue, lambda m: got.done() or got.set_result(m), no_ack=True)
        confirm = channel.publish(body, "", queue, Properties(headers={"n": 1}, content_type="application/x"))
        assert confirm is not None
        await asyncio.wait_for(confirm, 10)
        message = await asyncio.wait_for(got, 10)
    assert message.body == body
    assert (message.properties.headers, message.properties.content_type) == ({"n": 1}, "application/x")


async def test_two_thousand_pipelined_publishes_are_all_confirmed(amqp_vhost: str) -> None:
    queue = f"many-{uuid.uuid4().hex}"
    async with opened(amqp_vhost) as connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.queue_declare(queue, auto_delete=False)
        confirms = [channel.publish(b"%d" % i, "", queue, Properties()) for i in range(2000)]
        await asyncio.wait_for(asyncio.gather(*confirms), 30)  # RabbitMQ acks these with ``multiple`` mostly
        ok = await channel.queue_declare(queue, passive=True)
        assert ok.message_count == 2000
        await channel.queue_delete(queue)


async def test_a_consumer_rabbitmq_cancels_is_reported_and_the_channel_lives(amqp_vhost: str) -> None:
    queue = f"gone-{uuid.uuid4().hex}"
    async with opened(amqp_vhost) as connection:
        consuming = await connection.channel()
        await consuming.queue_declare(queue)
        cancelled: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        consuming.on_consumer_cancel_callbacks.add(lambda tag: cancelled.done() or cancelled.set_result(tag))
        tag = await consuming.basic_consume(queue, lambda m: None)
        other = await connection.channel()
        await other.queue_delete(queue)
        assert await asyncio.wait_for(cancelled, 10) == tag
        assert not consuming.is_closed
        await consuming.basic_qos(5)  # still answers


async def test_a_channel_error_closes_only_that_channel(amqp_vhost: str) -> None:
    queue = f"odd-{uuid.uuid4().hex}"
    async with opened(amqp_vhost) as connection:
        first = await connection.channel()
        second = await connection.channel()
        await first.queue_declare(queue, auto_delete=True)
        with pytest.raises(ChannelClosed) as caught:
            await first.queue_declare(queue, durable=True)  # other attributes: 406 PRECONDITION_FAILED
        assert caught.value.reply_code == 406
        assert "inequivalent arg 'durable'" in caught.value.reply_text
        assert first.is_closed
        assert not connection.is_closed
        ok = await second.queue_declare(queue, passive=True)
        assert ok.queue == queue
        with pytest.raises(ChannelClosed):  # the closed channel says why, also later
            await first.basic_qos(1)


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
        while data := await reader.read(65536):
            await flowing.wait()
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_a_link_gone_silent_is_dead_after_two_heartbeats(amqp_vhost: str) -> None:
    flowing = asyncio.Event()
    flowing.set()
    tasks: list[asyncio.Task[None]] = []

    async def accept(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection("127.0.0.1", 5672)
        tasks.append(asyncio.create_task(_relay(client_r, broker_w, flowing)))
        tasks.append(asyncio.create_task(_relay(broker_r, client_w, flowing)))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with opened(amqp_vhost, port=port, heartbeat=1) as connection:
            channel = await connection.channel()
            await channel.basic_qos(1)
            flowing.clear()  # the network stops: no error, just silence
            with pytest.raises(LinkError, match="no heartbeat from RabbitMQ"):
                await asyncio.wait_for(asyncio.shield(connection.closing), 10)
            assert channel.is_closed
    finally:
        flowing.set()
        for task in tasks:
            task.cancel()
        server.close()


async def test_acks_in_one_batch_never_ack_a_delivery_still_held(amqp_vhost: str) -> None:
    """Acks of one loop turn go as one ``multiple`` ack up to the lowest unsettled delivery, the rest one by one."""
    queue = f"held-{uuid.uuid4().hex}"
    async with opened(amqp_vhost) as connection:
        publishing = await connection.channel(publisher_confirms=True)
        await publishing.queue_declare(queue)
        await asyncio.gather(*[publishing.publish(b"%d" % i, "", queue, Properties()) for i in range(20)])  # type: ignore[misc]
        consuming = await connection.channel()
        await consuming.basic_qos(20)
        got: list[Delivered] = []
        all_in = asyncio.Event()
        await consuming.basic_consume(queue, lambda m: (got.append(m), len(got) == 20 and all_in.set()))
        await asyncio.wait_for(all_in.wait(), 10)
        held = got[4]  # the 5th stays unsettled; 1-4 can be one multiple ack, 6-20 cannot
        consuming.reject(got[9].delivery_tag, requeue=True)  # a reject below the others settles too
        consuming.ack([m.delivery_tag for m in got if m is not held and m is not got[9]])
        await consuming.basic_qos(20)  # a round trip: RabbitMQ has processed the acks
        await consuming.close()  # the unsettled one goes back to the queue
        ok = await publishing.queue_declare(queue, passive=True)
        assert ok.message_count == 2  # the held one and the requeued one, nothing else
        await publishing.queue_delete(queue)


async def test_a_publish_that_cannot_be_framed_is_refused_and_the_link_lives(amqp_vhost: str) -> None:
    queue = f"huge-{uuid.uuid4().hex}"
    async with opened(amqp_vhost) as connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.queue_declare(queue, auto_delete=True)
        with pytest.raises(ValueError, match="over one frame"):
            channel.publish(b"{}", "", queue, Properties(headers={"h": "x" * 200_000}))
        confirm = channel.publish(b"{}", "", queue, Properties(headers={"h": "small"}))
        assert confirm is not None
        await asyncio.wait_for(confirm, 10)  # numbering stayed in step with RabbitMQ's
        assert (await channel.queue_declare(queue, passive=True)).message_count == 1


async def test_the_link_keeps_alive_with_short_intervals_even_without_heartbeats(amqp_vhost: str) -> None:
    """With ``heartbeat=0`` nothing else would notice a peer gone silent (no FIN, no RST): TCP keepalive does."""
    async with opened(amqp_vhost, heartbeat=0) as connection:
        assert connection._transport is not None
        sock = connection._transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
        if hasattr(socket, "TCP_KEEPCNT"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
