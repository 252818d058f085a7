"""The Redis broker, byte-compatible with kombu's Redis transport (celery-wire.md §2): Celery clients and
workers, ``celery inspect``/``events`` and Flower share queues, bindings, unacked bookkeeping and fanout
channels with celeriac.

What celeriac adds on the same bytes (see `consumer` and `restore`):

* the move from a queue into ``unacked`` is one Lua script, so no crash or dropped connection loses a message;
* an idle consumer blocks (``BLMOVE`` of a list onto itself) instead of polling, with the fetch script queued
  behind each wait, so a new message is claimed the moment it arrives and delivered in one round trip;
* live consumers renew their in-flight deliveries, so ``visibility_timeout`` only restores dead consumers'
  messages (a long task or a far ETA is not run twice);
* each delivery is counted; past ``max_deliveries`` a message goes to the list ``<queue>.dead`` (itself a
  queue any kombu or celeriac consumer can read), as does one that cannot be read (the reason in
  ``<queue>.dead.reasons``); a message restored after its consumer died is fetched alone;
* a closing transport (a worker reconnecting after Redis went away) re-queues at once what it still holds and
  what a fetch moved whose reply was lost, retrying until Redis answers (`recover`);
* concurrent acks, and concurrent publishes, share round trips; a fetch takes up to the free prefetch window.

Fanout mapping: a channel is ``"<exchange>"`` or ``"<exchange>/<routing key>"``; it is published on kombu's
Redis channel ``/<db>.<channel>`` (after ``global_keyprefix``). So ``fanout("celeryev/worker.heartbeat", m)``
is what Celery's event dispatcher sends, ``fanout("celery.pidbox", m)`` a remote-control broadcast, and
``subscribe(["celeryev/*"])`` (or ``"celeryev/#"``) receives every event, ``subscribe(["celery.pidbox"])``
every control command. Control *replies* are not fanout: they are list messages routed through bindings,
``publish(reply, routing_key=<oid>, exchange="reply.celery.pidbox")``, into the queue a client bound with
``bind(f"{oid}.reply.celery.pidbox", "reply.celery.pidbox", oid)`` (celery-wire.md §5.3).

The parts are mapped in the package docstring (`celeriac.transports.redis`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from celeriac._redis.client import database, make_client, raw_connection
from celeriac._redis.urls import redact
from celeriac.errors import TransportClosed, TransportError
from celeriac.protocol.message import Message
from celeriac.transports._batch import Batcher
from celeriac.transports.base import Transport, TransportOptions
from celeriac.transports.redis import envelope as redis_envelope
from celeriac.transports.redis.consumer import RedisConsumer
from celeriac.transports.redis.ops import RedisOps
from celeriac.transports.redis.options import check_names, settings_from
from celeriac.transports.redis.pubsub import RedisSubscription
from celeriac.transports.redis.recover import recover_later, requeue_owned
from celeriac.transports.redis.restore import Restorer

if TYPE_CHECKING:
    from celeriac.transports.redis.direct import RedisBlockingPublisher

log = logging.getLogger("celeriac.transports.redis")

_REQUEUE_AT_CLOSE = 5.0  # seconds `close` spends re-queueing owned deliveries before retrying in the background


class RedisTransport(Transport):
    """A connection to one Redis database, speaking kombu's Redis transport protocol.

    Args:
        url: ``redis://``, ``rediss://`` or ``redis+socket://`` URL (see `celeriac._redis.urls`).
        options: transport options; ``extra`` holds kombu's ``broker_transport_options`` (see
            `options.RedisSettings` for every key read).

    Raises:
        ConfigurationError: a bad URL or option (no I/O happens here).
    """

    has_broadcast = True
    has_delayed_delivery = False
    default_host = "localhost"  # redis-py's default when the URL names no host
    tls_schemes = frozenset({"rediss"})

    def __init__(self, url: str, options: TransportOptions | None = None) -> None:
        self.url = redact(url)
        self.options = options or TransportOptions()
        extra = self.options.extra
        check_names(extra)  # before the client, so an option's error names it as a broker transport option
        self._client = make_client(url, extra)
        self.settings = settings_from(self.options, database(self._client))
        # The template of blocking waits' connections (`wait`), whose read timeout outlasts a wait; the
        # waits do their one retry themselves.
        socket_timeout = float(extra.get("socket_timeout", 30.0) or 30.0)
        # A blocking wait answers within block_timeout; past that plus a grace of at most 10 s its link is taken
        # for dead (a frozen NAT entry, no FIN or RST), so a silently dead fetch link is replaced in ~15 s, not
        # block_timeout + socket_timeout (35 s by default). The grace absorbs a busy server's late reply.
        blocking_deadline = self.settings.block_timeout + min(socket_timeout, 10.0)
        self._blocking = make_client(url, extra, socket_timeout=blocking_deadline, retries=0)
        self.ops = RedisOps(self._client, self._blocking, self.settings, self.url)
        self.acks: Batcher[tuple[str, int]] = Batcher(self.ops.ack, self.settings.ack_batch, "celeriac-redis-acks")
        self._pushes: Batcher[tuple[Sequence[str], str]] = Batcher(
            self.ops.push, self.settings.ack_batch, "celeriac-redis-publish"
        )
        self._restorer: asyncio.Task[None] | None = None
        self._consumers: set[RedisConsumer] = set()
        self._subscriptions: set[RedisSubscription] = set()
        self._bindings: dict[str, set[tuple[str, str, str]]] = {}  # queue -> what we bound it to, for `delete`
        self._closed = False
        self._link_of = (url, extra)  # what a blocking publisher's link is made from (`blocking_publisher`)
        self._publishers: weakref.WeakSet[RedisBlockingPublisher] = weakref.WeakSet()

    def check_open(self) -> None:
        """Raise `TransportClosed` once `close` was called."""
        if self._closed:
            raise TransportClosed(f"the transport for {self.url} is closed")

    async def connect(self) -> None:
        """Check that Redis answers. Raises `ConnectionLost` when it cannot be reached."""
        self.check_open()
        await self.ops.ping()

    async def close(self) -> None:
        """Restore un-acked deliveries to their queues, end consumers and subscriptions, drop connections.

        Idempotent; the connections are released even when Redis is unreachable.
        """
        if self._closed:
            return
        self._closed = True
        for publisher in list(self._publishers):
            publisher.close()
        try:
            await self._pushes.close()
            await self.acks.close()
            for consumer in list(self._consumers):
                await consumer.close()
            for subscription in list(self._subscriptions):
                await subscription.close()
            if self._restorer is not None:
                self._restorer.cancel()
                await asyncio.wait([self._restorer], timeout=5.0)
        finally:
            self._consumers.clear()
            self._subscriptions.clear()
            # What the consumers could not restore (Redis unreachable), and what a fetch moved whose reply was
            # lost, goes back to the queues now, or as soon as Redis answers again (`recover`).
            try:
                async with asyncio.timeout(_REQUEUE_AT_CLOSE):  # a frozen link: hand over to the retries
                    await requeue_owned(self.ops)
            except (TransportError, TimeoutError) as exc:
                log.warning("could not re-queue this transport's unsettled deliveries (retrying): %s", exc)
                deadline = time.monotonic() + self.settings.visibility_timeout
                recover_later(self.ops, deadline, self._drop_connections)
            else:
                await self._drop_connections()

    async def _drop_connections(self) -> None:
        with contextlib.suppress(Exception):
            await self.ops.close()
        for client in (self._client, self._blocking):
            with contextlib.suppress(Exception):  # closing sockets of a dead server may complain
                await client.aclose()

    # -- queues ------------------------------------------------------------------------------------------------

    async def declare(self, queue: str) -> None:
        """Bind ``queue`` to the direct exchange of the same name (``_kombu.binding.<queue>``, §2.3).

        Creates no list: Redis creates it with the first message, as kombu's declare does.
        """
        self.check_open()
        await self.ops.declare(queue, exchange=queue, routing_key=queue)
        self._bindings.setdefault(queue, set()).add((queue, queue, ""))

    async def bind(self, queue: str, exchange: str, routing_key: str, pattern: str = "") -> None:
        """Bind ``queue`` to ``exchange`` for ``routing_key`` (``pattern``: the regex of a topic binding)."""
        self.check_open()
        await self.ops.declare(queue, exchange=exchange, routing_key=routing_key, pattern=pattern)
        self._bindings.setdefault(queue, set()).add((exchange, routing_key, pattern))

    async def delete(self, queue: str) -> None:
        """Remove the bindings this transport made for ``queue`` and DEL its lists (kombu's queue delete)."""
        self.check_open()
        for exchange, routing_key, pattern in self._bindings.pop(queue, set()):
            await self.ops.unbind(queue, exchange, routing_key, pattern)
        await self.ops.purge(queue)

    async def publish(
        self,
        message: Message,
        routing_key: str,
        exchange: str = "",
        *,
        not_before: float | None = None,
    ) -> None:
        """LPUSH the envelope to the list of every queue the exchange routes to; returns once Redis has it.

        The anonymous exchange ``""`` routes to the queue named ``routing_key``; a named exchange through its
        bindings (a message nothing is bound for is dropped, as kombu drops it). ``not_before`` is ignored:
        Redis has no delayed delivery, the worker holds early messages.

        Raises:
            TypeError: a header or property has no JSON form.
            ValueError: a header or property is not valid Unicode (a lone surrogate Redis could not read).
            ConnectionLost: the link broke (the message may or may not have been stored).
        """
        self.check_open()
        push = (
            self._direct_push(message, routing_key)
            if not exchange
            else await self._push_of(message, routing_key, exchange)
        )
        if push is not None:
            await self._pushes.submit(push)  # shares a round trip with concurrent publishes

    def _direct_push(self, message: Message, queue: str) -> tuple[list[str], str]:
        """The list and envelope of ``message`` through the anonymous exchange (every task send): to the queue
        the routing key names, with no lookup to await."""
        return [self.settings.keys.queue(queue, message.priority)], redis_envelope.encode(message, "", queue)

    async def _push_of(self, message: Message, key: str, exchange: str) -> tuple[list[str], str] | None:
        """The lists ``message`` goes to through a named exchange and its envelope; None (and a warning) when no
        queue is bound."""
        payload = redis_envelope.encode(message, exchange, key)
        queues = await self.ops.route(exchange, key)
        if not queues:
            log.warning("message to exchange %r with routing key %r dropped: no queue is bound", exchange, key)
            return None
        return [self.settings.keys.queue(queue, message.priority) for queue in queues], payload

    async def publish_many(self, items: Sequence[tuple[Message, str, str, float | None]]) -> None:
        """`publish` each item, all in as few round trips as the batch size allows (one per 1,000 or so)."""
        self.check_open()
        pushes = []
        for message, key, exchange, _ in items:
            push = self._direct_push(message, key) if not exchange else await self._push_of(message, key, exchange)
            if push is not None:
                pushes.append(push)
        if pushes:
            # Shielded as in `publish`: a caller that stops waiting does not take its items out of a batch.
            await asyncio.shield(self._pushes.enqueue_many(pushes))

    def blocking_publisher(self) -> RedisBlockingPublisher | None:
        """A publisher for the calling thread, on a blocking connection of its own (`celeriac._redis.blocking`);
        None without hiredis, which reads its replies (sync sends then go through the portal loop)."""
        self.check_open()
        try:
            from celeriac._redis.blocking import BlockingLink
            from celeriac.transports.redis.direct import RedisBlockingPublisher
        except ImportError:  # pragma: no cover - hiredis comes with celeriac[redis]
            return None
        url, extra = self._link_of
        publisher = RedisBlockingPublisher(BlockingLink(url, extra, self.url), self.settings.keys)
        self._publishers.add(publisher)
        return publisher

    def consume(self, queues: Sequence[str], prefetch: int) -> RedisConsumer:
        """A consumer of ``queues``; see `consumer` for how it behaves.

        Consuming needs no declaration on Redis (a queue is just its lists); `declare` binds a queue for
        publishers that route through its exchange.
        """
        self.check_open()
        consumer = RedisConsumer(self, queues, prefetch)
        self._consumers.add(consumer)
        return consumer

    def consumer_started(self, consumer: RedisConsumer) -> None:
        """Make sure the restorer runs while anyone consumes (called on a consumer's first fetch)."""
        if self._restorer is None or self._restorer.done():
            self._restorer = asyncio.create_task(Restorer(self.ops).run(), name="celeriac-redis-restore")

    def sole_consumer(self, consumer: RedisConsumer) -> bool:
        """True when ``consumer`` is this transport's only consumer (the owned hash is then all its own)."""
        return self._consumers == {consumer}

    def consumer_finished(self, consumer: RedisConsumer) -> None:
        """Forget a consumer that is cancelled and holds no un-acked delivery (nothing left to restore)."""
        self._consumers.discard(consumer)

    async def purge(self, queue: str) -> int:
        """Delete every ready message of ``queue`` (all priority lists); returns how many."""
        self.check_open()
        return await self.ops.purge(queue)

    async def size(self, queue: str) -> int:
        """Ready messages in ``queue`` (all priority lists; delivered, un-acked ones do not count)."""
        self.check_open()
        return await self.ops.size(queue)

    @staticmethod
    def dead_letter_queue(queue: str) -> str:
        """The name of the queue holding ``queue``'s dead letters (consume or purge it like any queue)."""
        return f"{queue}.dead"

    # -- broadcast ---------------------------------------------------------------------------------------------

    async def fanout(self, channel: str, message: Message) -> None:
        """PUBLISH the envelope on the Redis channel of ``channel`` (``exchange`` or ``exchange/routing_key``)."""
        await self.fanout_counted(channel, message)

    async def fanout_counted(self, channel: str, message: Message) -> int:
        """`fanout`; PUBLISH's own count of the subscribers that received it."""
        self.check_open()
        exchange, _, routing_key = channel.partition("/")
        payload = redis_envelope.encode(message, exchange, routing_key)
        return await self.ops.publish(self.settings.keys.fanout_channel(channel), payload)

    async def subscribe(self, channels: Sequence[str], name: str | None = None) -> RedisSubscription:
        """Listen on ``channels`` (``#``/``*`` wildcards allowed); returns once Redis confirmed."""
        self.check_open()
        subscription = RedisSubscription(
            raw_connection(self._client), self.settings.keys, self.url, on_close=self._subscriptions.discard
        )
        try:
            await subscription.open(channels)
        except BaseException:
            await subscription.close()
            raise
        self._subscriptions.add(subscription)
        return subscription
