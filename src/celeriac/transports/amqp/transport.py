"""RabbitMQ (AMQP 0-9-1) on our own client (`celeriac._amqp.wire`): the Transport contract with Celery 5.7's
topology, publisher confirms on every publish, manual acks and QoS, quorum queues with a delivery limit, and
native delayed delivery.

Parts: `Link` (the connection and its recovery), `Admin` (declarations on a channel of their own, cached per
connection), `Publisher` (the confirm channel), `AMQPConsumer` (task queues), `AMQPSubscription` (broadcast),
`Topology` (what is declared, exactly as Celery declares it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from celeriac._amqp.errors import ChannelError
from celeriac._amqp.urls import parse_url
from celeriac.protocol.message import Message
from celeriac.transports.amqp import convert
from celeriac.transports.amqp.admin import Admin
from celeriac.transports.amqp.broadcast import AMQPSubscription, split_channel
from celeriac.transports.amqp.consumer import AMQPConsumer
from celeriac.transports.amqp.link import Link
from celeriac.transports.amqp.options import AMQPOptions
from celeriac.transports.amqp.publisher import Publisher
from celeriac.transports.amqp.topology import DELAYED_DELIVERY, DELAYED_LEVELS, PIDBOX, Topology, delayed_level
from celeriac.transports.base import BrokerAddress, QueueConsumer, Subscription, Transport, TransportOptions

log = logging.getLogger("celeriac.transports.amqp")


class AMQPTransport(Transport):
    """A transport to one RabbitMQ virtual host (``amqp://``, ``amqps://``, ``pyamqp://``)."""

    has_broadcast = True
    default_host = "localhost"
    default_virtual_host = "/"
    tls_schemes = frozenset({"amqps"})

    def __init__(self, url: str, options: TransportOptions | None = None) -> None:
        self.options = AMQPOptions.from_options(options or TransportOptions())
        address = parse_url(url, use_ssl=self.options.use_ssl)
        self.url = address.url
        self.link = Link(address, self.options, name="celeriac")
        self.topology = Topology(self.options)
        self.admin = Admin(self.link)
        self.publisher = Publisher(self.link)
        self.has_delayed_delivery = self.topology.delays_natively
        self._consumers: list[AMQPConsumer] = []
        self._subscriptions: list[AMQPSubscription] = []
        self._refused: dict[str, str] = {}

    def address(self) -> BrokerAddress:
        """Where the broker is, as kombu reads the URL (the virtual host URL-decoded, ``//`` is ``/``)."""
        address = self.link.address
        return BrokerAddress(
            scheme=self.url.partition("://")[0].lower(),
            hostname=address.host,
            port=address.port,
            userid=address.userid,
            virtual_host=address.virtual_host,
            ssl=address.tls,
        )

    async def connect(self) -> None:
        self.link.check_open()
        await self.link.connection(retry=False)

    async def close(self) -> None:
        if self.link.closed:
            return
        consumers, self._consumers = self._consumers, []
        subscriptions, self._subscriptions = self._subscriptions, []
        self.link.mark_closed()  # every iterator ends now; the connection closes below
        for consumer in consumers:
            await consumer.close()
        for subscription in subscriptions:
            await subscription.close()
        await self.publisher.close()
        await self.admin.close()
        await self.link.close()

    # -- declarations ---------------------------------------------------------------------------------

    async def declare(self, queue: str) -> None:
        """Declare ``queue`` as Celery does; a refusal is one logged line (the worker goes on without it)."""
        self.link.check_open()
        try:
            await self._declare(queue)
        except ChannelError as exc:
            if self._refused.get(queue) != str(exc):
                log.error("%s", exc)
            self._refused[queue] = str(exc)
        else:
            self._refused.pop(queue, None)

    async def _declare(self, queue: str) -> None:
        topology, admin = self.topology, self.admin
        spec = topology.queue(queue)
        await admin.queue(spec)
        if topology.is_control(queue) or topology.is_event(queue) or topology.is_delayed(queue):
            return
        dead = topology.dead_letter_queue(queue)
        if dead is not None:
            await admin.queue(topology.queue(dead))
        exchange = topology.exchange(queue)
        await admin.exchange(exchange)
        await admin.bind(queue, queue, queue)
        if self.options.quorum:  # Celery's worker builds the delayed levels whenever it detects quorum queues
            await self._declare_delayed()
        if self.has_delayed_delivery:  # ... and binds only queues whose exchange is not direct
            await admin.bind_exchange(queue, DELAYED_DELIVERY, f"#.{queue}")
            await admin.bind(queue, queue, f"#.{queue}")

    async def _declare_delayed(self) -> None:
        """The 28 levels of native delayed delivery and their bindings (kombu's topology)."""
        admin = self.admin
        for spec in self.topology.delayed_queues():
            await admin.exchange(self.topology.exchange(spec.name))
            await admin.queue(spec)
        await admin.exchange(self.topology.exchange(DELAYED_DELIVERY))
        queue_bindings, exchange_bindings = self.topology.delayed_bindings()
        for queue, exchange, key in queue_bindings:
            await admin.bind(queue, exchange, key)
        for destination, source, key in exchange_bindings:
            await admin.bind_exchange(destination, source, key)

    def refused(self, queue: str) -> bool:
        """Whether RabbitMQ refused our declaration of ``queue`` (it may exist with other attributes)."""
        return queue in self._refused

    async def usable(self, queue: str) -> bool:
        """Whether ``queue`` can be consumed: declared (cached), or refused but present (other arguments)."""
        await self.declare(queue)
        if queue not in self._refused:
            return True
        try:
            await self.admin.run(f"checking queue {queue!r}", lambda ch: ch.queue_declare(queue, passive=True))
        except ChannelError as exc:
            log.error("queue %r is not consumed: %s", queue, exc)
            return False
        return True

    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        self.link.check_open()
        await self.admin.queue(self.topology.queue(queue))
        await self.admin.exchange(self.topology.exchange(exchange))
        await self.admin.bind(queue, exchange, routing_key)

    async def delete(self, queue: str) -> None:
        self.link.check_open()
        await self.admin.delete(queue)

    async def purge(self, queue: str) -> int:
        self.link.check_open()
        return await self.admin.purge(queue)

    async def size(self, queue: str) -> int:
        self.link.check_open()
        return await self.admin.size(queue)

    # -- publishing -----------------------------------------------------------------------------------

    async def publish(
        self,
        message: Message,
        routing_key: str,
        exchange: str = "",
        *,
        not_before: float | None = None,
    ) -> None:
        self.link.check_open()
        mandatory = exchange == ""  # a named exchange drops what no binding wants (kombu's direct routing)
        if not_before is not None and self.has_delayed_delivery:
            delay = not_before - time.time()
            if delay > 0:
                await self._declare_delayed()
                exchange = delayed_level(DELAYED_LEVELS)
                routing_key = self.topology.delayed_routing_key(delay, routing_key)
                mandatory = False
        if exchange.endswith(PIDBOX):  # Celery declares the reply exchange before it replies (§3.5)
            await self.admin.exchange(self.topology.exchange(exchange))
        properties = convert.to_properties(message)
        await self.publisher.publish(message.body, exchange, routing_key, properties, mandatory=mandatory)

    # -- consuming and broadcast ----------------------------------------------------------------------

    def consume(self, queues: Sequence[str], prefetch: int) -> QueueConsumer:
        consumer = AMQPConsumer(self, queues, prefetch)
        if not self.link.closed:
            self._consumers.append(consumer)
        return consumer

    async def fanout(self, channel: str, message: Message) -> None:
        self.link.check_open()
        exchange, key = split_channel(channel)
        await self.admin.exchange(self.topology.broadcast_exchange(exchange, key is not None))
        properties = convert.to_properties(message)  # control requests say delivery_mode 2, events 1 (§3.5)
        await self.publisher.publish(message.body, exchange, key or "", properties, mandatory=False)

    async def subscribe(self, channels: Sequence[str], name: str | None = None) -> Subscription:
        """Listen on ``channels`` through a queue of this subscription's own (named ``name`` when given)."""
        self.link.check_open()
        subscription = AMQPSubscription(self, channels, name)
        await subscription.open()
        self._subscriptions.append(subscription)
        return subscription

    def forget(self, subscription: AMQPSubscription) -> None:
        """A subscription closed itself."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
