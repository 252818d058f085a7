"""Broadcast over exchanges: a channel ``"exch/routing.key"`` is topic exchange ``exch`` with that key (``*`` and
``#`` as AMQP reads them), a bare name a fanout exchange. Each subscription gets an exclusive, auto-delete queue
of its own (``celeryev.<uuid4>`` for events; the name the caller gives, such as ``<node>.celery.pidbox``),
consumed without acks as Celery consumes its pidbox and event queues."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from celeriac._amqp.errors import amqp_errors, describe
from celeriac._amqp.wire.channel import Channel, Delivered
from celeriac.errors import ConnectionLost
from celeriac.protocol.message import Message
from celeriac.transports.amqp import convert
from celeriac.transports.base import Subscription

if TYPE_CHECKING:
    from celeriac.transports.amqp.transport import AMQPTransport


def split_channel(channel: str) -> tuple[str, str | None]:
    """``(exchange, routing key)``: the key is None for a bare (fanout) name."""
    exchange, slash, key = channel.partition("/")
    return (exchange, key) if slash else (exchange, None)


class AMQPSubscription(Subscription):
    """Messages broadcast on some channels, from one exclusive queue bound to their exchanges."""

    def __init__(self, transport: AMQPTransport, channels: Sequence[str], name: str | None) -> None:
        self._transport = transport
        self._channels = list(channels)
        topics = [c for c in self._channels if split_channel(c)[1] is not None]
        prefix = transport.options.event_prefix
        self.queue = name or (f"{prefix}.{uuid.uuid4()}" if topics else f"{uuid.uuid4()}.{self._channels[0]}.bcast")
        self._inbox: asyncio.Queue[tuple[str, Message] | BaseException | None] = asyncio.Queue()
        self._channel: Channel | None = None
        self._closed = False
        self._fanouts = {split_channel(c)[0] for c in self._channels if split_channel(c)[1] is None}

    async def open(self) -> None:
        """Declare the exchanges and the queue, bind, and start consuming."""
        transport = self._transport
        spec = transport.topology.subscriber_queue(self.queue)
        for channel in self._channels:
            exchange, key = split_channel(channel)
            await transport.admin.exchange(transport.topology.broadcast_exchange(exchange, key is not None))
        link = await transport.link.channel()
        self._channel = link
        server = transport.link.address.url
        with amqp_errors(f"declaring queue {self.queue!r}", server):
            # Exclusive queues belong to one connection: declared, bound and consumed on the same channel.
            await link.queue_declare(
                self.queue,
                durable=spec.durable,
                auto_delete=spec.auto_delete,
                exclusive=spec.exclusive,
                arguments=spec.arguments or None,
            )
        for name in self._channels:
            exchange, key = split_channel(name)
            with amqp_errors(f"binding queue {self.queue!r} to exchange {exchange!r}", server):
                await link.queue_bind(self.queue, exchange, routing_key=key or "")
        link.closing.add_done_callback(lambda _: self._channel_closed(link))
        with amqp_errors(f"consuming queue {self.queue!r}", server):
            await link.basic_consume(self.queue, self._on_message, no_ack=True)

    def _on_message(self, message: Delivered) -> None:
        exchange = message.exchange
        name = exchange if exchange in self._fanouts else f"{exchange}/{message.routing_key}"
        self._inbox.put_nowait((name, convert.from_delivery(message.body, message.properties)))

    def _channel_closed(self, channel: Channel) -> None:
        if self._closed:
            return
        reason = channel.closing.exception() if not channel.closing.cancelled() else None
        if reason is not None and not isinstance(reason, ConnectionError) and getattr(reason, "args", None):
            text = describe(f"subscription queue {self.queue!r}", reason)
        else:
            text = f"RabbitMQ at {self._transport.link.address.url}: connection lost"
        self._inbox.put_nowait(ConnectionLost(text))

    async def __anext__(self) -> tuple[str, Message]:
        if self._closed:
            raise StopAsyncIteration
        item = await self._inbox.get()
        if item is None or self._closed:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._inbox.put_nowait(item)  # every later call says the same
            raise item
        return item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.put_nowait(None)
        self._transport.forget(self)
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), 2.0)  # the queue is auto-delete: it goes with it
