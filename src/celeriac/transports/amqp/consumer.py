"""Consuming task queues: one channel per consumer, manual acks, ``basic.qos`` as the prefetch window.

QoS follows Celery (celery-wire.md §3.3): global (one window for the whole channel) on RabbitMQ < 4 with
classic queues; per consumer with quorum queues or RabbitMQ >= 4, where RabbitMQ applies a new prefetch only to
consumers created after it, so `set_prefetch` then re-creates the consumers (new one first, so deliveries keep
flowing; un-acked deliveries stay valid, they belong to the channel). Deliveries wait in a small buffer per
queue and the earliest queue's come out first. A delivery of a channel that closed is dead: its ack or reject is
a logged no-op (RabbitMQ delivers the message again) and the buffered ones are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from celeriac._amqp.errors import ChannelError, amqp_errors, describe
from celeriac._amqp.wire.channel import Channel, Delivered
from celeriac.errors import ConnectionLost, TransportClosed
from celeriac.transports.amqp import convert
from celeriac.transports.base import Delivery, QueueConsumer, settled_future

if TYPE_CHECKING:
    from celeriac.transports.amqp.transport import AMQPTransport

log = logging.getLogger("celeriac.transports.amqp")


class AMQPDelivery(Delivery):
    """One delivery; acked or rejected on the channel it came on, while that channel lives."""

    __slots__ = ("_channel", "_consumer", "_settled", "_tag")

    def __init__(
        self,
        consumer: AMQPConsumer,
        channel: Channel,
        message: Delivered,
        queue: str,
    ) -> None:
        self._consumer = consumer
        self._channel = channel
        self._tag = message.delivery_tag
        self._settled = False
        self.message = convert.from_delivery(message.body, message.properties)
        self.queue = queue
        self.exchange = message.exchange
        self.routing_key = message.routing_key
        self.redelivered = message.redelivered
        self.delivery_tag = str(self._tag)

    async def ack(self) -> None:
        await self.ack_soon()

    def ack_soon(self) -> asyncio.Future[None]:
        if self._settled:
            return settled_future()
        self._settled = True
        if self._channel.is_closed:
            log.info("ack of delivery %s from %r skipped: its channel closed, RabbitMQ delivers it again",
                     self._tag, self.queue)  # fmt: skip
        else:
            self._channel.ack([self._tag])  # written with this loop turn's other acks (one multiple ack)
        return settled_future()

    async def reject(self, requeue: bool = False) -> None:
        if self._settled:
            return
        self._settled = True
        if self._channel.is_closed:
            log.info("reject of delivery %s from %r skipped: its channel closed, RabbitMQ delivers it again",
                     self._tag, self.queue)  # fmt: skip
            return
        self._channel.reject(self._tag, requeue=requeue)


class AMQPConsumer(QueueConsumer):
    """Consumes ``queues`` on one channel of its own (opened on the first ``__anext__``)."""

    def __init__(self, transport: AMQPTransport, queues: Sequence[str], prefetch: int) -> None:
        self._transport = transport
        self._queues = list(dict.fromkeys(queues))
        self._prefetch = prefetch
        self._applied_prefetch = prefetch
        self._buffers: dict[str, deque[AMQPDelivery]] = {q: deque() for q in self._queues}
        self._tags: dict[str, str] = {}  # queue -> consumer tag
        self._channel: Channel | None = None
        self._start: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._error: BaseException | None = None
        self._cancelled = False
        self._closing = False
        self._qos_task: asyncio.Task[None] | None = None
        self.server = transport.link.address.url

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(self._queues)

    @property
    def global_qos(self) -> bool:
        """Celery's choice: one window per channel on RabbitMQ < 4 with classic queues. Not when a queue exists
        with other attributes than ours (it may be a quorum queue: consuming one on a channel with global QoS
        makes RabbitMQ close the whole connection with NOT_IMPLEMENTED)."""
        transport = self._transport
        odd = any(transport.refused(queue) for queue in self._queues)
        return not transport.options.quorum and transport.link.server_version < (4,) and not odd

    async def __anext__(self) -> Delivery:
        while True:
            if self._cancelled:  # also when the transport closed it
                raise StopAsyncIteration
            self._transport.link.check_open()
            for queue in self._queues:
                buffer = self._buffers.get(queue)
                if buffer:
                    return buffer.popleft()
            if self._error is not None:
                raise self._error
            if self._start is None:
                self._start = asyncio.ensure_future(self._open())
            if not self._start.done():
                self._wake.clear()
                waiter = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({self._start, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                continue
            if self._start.cancelled():
                raise StopAsyncIteration
            self._start.result()  # raises why the consumer could not start
            self._wake.clear()
            await self._wake.wait()

    async def _open(self) -> None:
        for queue in list(self._queues):
            if not await self._transport.usable(queue):
                self._drop(queue)
        channel = await self._transport.link.channel()
        self._channel = channel
        channel.closing.add_done_callback(lambda _: self._channel_closed(channel))
        channel.on_consumer_cancel_callbacks.add(self._cancelled_by_broker)
        with amqp_errors("setting the prefetch window (basic.qos)", self.server):
            await channel.basic_qos(prefetch_count=self._prefetch, global_=self.global_qos)
        self._applied_prefetch = self._prefetch
        for queue in list(self._queues):
            await self._consume(queue)
        self._wake.set()

    async def _consume(self, queue: str) -> None:
        channel = self._channel
        if channel is None:
            return

        def on_message(message: Delivered) -> None:
            self._buffers.setdefault(queue, deque()).append(AMQPDelivery(self, channel, message, queue))
            self._wake.set()

        with amqp_errors(f"consuming queue {queue!r}", self.server):
            tag = await channel.basic_consume(queue, on_message, no_ack=False)
        old = self._tags.get(queue)
        self._tags[queue] = tag
        if old is not None:
            with amqp_errors(f"cancelling the old consumer of queue {queue!r}", self.server):
                await channel.basic_cancel(old)

    def _drop(self, queue: str) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    def _channel_closed(self, channel: Channel) -> None:
        if channel is not self._channel or self._closing or self._cancelled:
            return
        for buffer in self._buffers.values():
            buffer.clear()  # dead delivery tags: RabbitMQ delivers these again
        reason = channel.closing.exception() if not channel.closing.cancelled() else None
        if reason is not None and not isinstance(reason, ConnectionError) and getattr(reason, "args", None):
            text = describe(f"consumer channel of {self._queues}", reason)
        else:
            text = f"RabbitMQ at {self.server}: connection lost"
        self._error = ConnectionLost(text)
        self._wake.set()

    def _cancelled_by_broker(self, tag: str) -> None:
        for queue, known in list(self._tags.items()):
            if known == tag:
                log.error("RabbitMQ cancelled the consumer of queue %r (deleted?); it is no longer consumed", queue)
                del self._tags[queue]
                self._drop(queue)

    async def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True
        self._wake.set()
        if self._start is not None and not self._start.done():
            self._start.cancel()
        channel = self._channel
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                for tag in list(self._tags.values()):
                    await channel.basic_cancel(tag)
            left = [d for buffer in self._buffers.values() for d in buffer]
            for buffer in self._buffers.values():
                buffer.clear()
            for delivery in left:  # fetched but never handed out: back to the queue now
                await delivery.reject(requeue=True)
        self._tags.clear()

    def set_prefetch(self, prefetch: int) -> None:
        self._prefetch = prefetch
        if self._channel is None or self._cancelled:
            return
        if self._qos_task is None or self._qos_task.done():
            self._qos_task = asyncio.ensure_future(self._apply_prefetch())

    async def _apply_prefetch(self) -> None:
        channel = self._channel
        while channel is not None and not channel.is_closed and self._applied_prefetch != self._prefetch:
            wanted = self._prefetch
            try:
                with amqp_errors("changing the prefetch window (basic.qos)", self.server):
                    await channel.basic_qos(prefetch_count=wanted, global_=self.global_qos)
                    self._applied_prefetch = wanted
                    if not self.global_qos:  # a per-consumer window only applies to consumers made after it
                        for queue in list(self._tags):
                            await self._consume(queue)
            except (ConnectionLost, ChannelError) as exc:
                log.info("prefetch change to %d not applied: %s", wanted, exc)
                return

    async def add_queue(self, queue: str) -> None:
        if queue in self._queues:
            return
        transport = self._transport
        transport.link.check_open()
        if not await transport.usable(queue):
            return
        if transport.refused(queue) and self.global_qos and self._channel is not None:
            log.error("queue %r is not consumed: it exists with other attributes and this consumer's window is "
                      "global (a quorum queue would close the connection)", queue)  # fmt: skip
            return
        self._queues.append(queue)
        self._buffers.setdefault(queue, deque())
        if self._channel is not None and self._start is not None and self._start.done():
            await self._consume(queue)

    async def remove_queue(self, queue: str) -> None:
        self._drop(queue)
        tag = self._tags.pop(queue, None)
        channel = self._channel
        if tag is not None and channel is not None and not channel.is_closed:
            with amqp_errors(f"cancelling the consumer of queue {queue!r}", self.server):
                await channel.basic_cancel(tag)
        for delivery in self._buffers.pop(queue, deque()):
            await delivery.reject(requeue=True)

    async def close(self) -> None:
        """End iteration and close the channel (un-acked deliveries go back to their queues)."""
        self._closing = True
        self._cancelled = True
        self._wake.set()
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(), 2.0)


def closed_error(transport: AMQPTransport) -> TransportClosed:
    """What a use after close raises."""
    return TransportClosed(f"transport to {transport.link.address.url} is closed")
