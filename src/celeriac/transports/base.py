"""The one small async interface every broker implements, and the promises each part of it keeps.

A transport moves `Message` objects between producers and workers. Its promises:

* ``publish`` returns only once the broker has the message (SQLite commit, Redis reply, AMQP confirm).
* ``consume`` yields `Delivery` objects; at most ``prefetch`` of them are un-acked at any moment (``prefetch=0``
  means no limit). A delivery that is neither acked nor rejected when its consumer dies is delivered again
  (SQLite lease expiry, Redis visibility timeout, AMQP channel close).
* ``Delivery.ack`` removes the message for good; ``Delivery.reject(requeue=True)`` makes it deliverable again
  now, ``reject(requeue=False)`` drops it (or dead-letters it where the transport supports that).
* ``publish`` to the anonymous exchange ``""`` goes to the queue named by the routing key; to a named exchange,
  to every queue bound to it (``declare`` binds a queue to the exchange of its own name, ``bind`` adds
  more) with that routing key, and nowhere when none is (kombu's direct routing).
* ``fanout``/``subscribe`` broadcast to every current subscriber of a channel; a subscriber that is not
  listening misses the message (as on Celery's brokers). Subscribed channel names may use ``*`` (and ``#``,
  its AMQP spelling) as a wildcard: ``"celeryev/*"`` receives ``"celeryev/worker.heartbeat"``.
* ``close`` may be called twice and always releases everything; any other call after it raises
  `TransportClosed`.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlsplit

from celeriac._resource import AsyncResource
from celeriac.protocol.message import Message


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """The transport-level settings (``broker_transport_options`` plus a few broker_* settings).

    Attributes:
        visibility_timeout: seconds a delivered, un-acked message stays invisible before it is redelivered.
        polling_interval: longest pause between two looks at an idle queue (transports that poll).
        max_deliveries: deliveries after which a message is dead-lettered instead (transports that count them).
        extra: every other ``broker_transport_options`` key, for the transport to interpret.
        broker_settings: the app's settings of one broker's own group (``settings/amqp.py``), by name; the
            transport of that broker reads them (missing names: the setting's default), the others do not.
        queue_arguments: RabbitMQ arguments of named task queues (``task_queues``), declared with them.
    """

    visibility_timeout: float = 3600.0
    polling_interval: float = 0.05
    max_deliveries: int = 10
    extra: dict[str, Any] = field(default_factory=dict)
    broker_settings: dict[str, Any] = field(default_factory=dict)
    queue_arguments: dict[str, dict[str, Any]] = field(default_factory=dict)


def settled_future(error: BaseException | None = None) -> asyncio.Future[None]:
    """A future already done: with ``error`` when given, else with None (what `Delivery.ack_soon` returns for an
    ack that needs no round trip, or could not be started)."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
    return future


class Delivery(abc.ABC):
    """One message handed to one consumer, to be acked or rejected exactly once.

    Attributes:
        message: the message as published.
        queue: the queue it came from.
        exchange: the exchange it was published to ("" for the default exchange).
        routing_key: the routing key it was published with.
        redelivered: True when the broker delivered it before and it was not acked.
        delivery_tag: the transport's handle for it, unique among this consumer's deliveries.
    """

    message: Message
    queue: str
    exchange: str
    routing_key: str
    redelivered: bool
    delivery_tag: str

    @property
    def delivery_info(self) -> dict[str, Any]:
        """Celery's ``delivery_info`` dict for this delivery."""
        return {
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "priority": self.message.priority,
            "redelivered": self.redelivered,
        }

    @abc.abstractmethod
    async def ack(self) -> None:
        """Remove the message for good. Acking twice, or after a reject, does nothing."""

    @abc.abstractmethod
    async def reject(self, requeue: bool = False) -> None:
        """Give the message up: back to its queue now with ``requeue``, else dropped (or dead-lettered)."""

    def ack_soon(self) -> asyncio.Future[None]:
        """Start the ack now; the future holds its outcome (the early ack that overlaps the task body).

        The ack goes on even if nobody awaits the future. Transports override this to hand out the future
        of their batched ack directly, without the task this default wraps around `ack`.
        """
        return asyncio.ensure_future(self.ack())


class QueueConsumer(abc.ABC):
    """An async iterator of deliveries from some queues, with at most ``prefetch`` un-acked.

    ``cancel()`` stops fetching new messages; deliveries already handed out can still be acked or rejected.
    Iteration ends after ``cancel()`` or when the transport closes; it raises `ConnectionLost` when the
    link breaks.
    """

    def __aiter__(self) -> Self:
        return self

    @abc.abstractmethod
    async def __anext__(self) -> Delivery:
        """The next delivery; waits while the queues are empty or the prefetch window is full."""

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Stop fetching; wake a pending ``__anext__`` with StopAsyncIteration."""

    @abc.abstractmethod
    def set_prefetch(self, prefetch: int) -> None:
        """Change the prefetch window (0 = unlimited); takes effect on the next fetch."""

    @property
    @abc.abstractmethod
    def queues(self) -> tuple[str, ...]:
        """The queues this consumer reads, in priority order."""

    @abc.abstractmethod
    async def add_queue(self, queue: str) -> None:
        """Start consuming one more queue too (declares it)."""

    @abc.abstractmethod
    async def remove_queue(self, queue: str) -> None:
        """Stop consuming a queue; its un-acked deliveries stay ackable."""


class Subscription(abc.ABC):
    """An async iterator of the messages broadcast on some channels since it was opened."""

    def __aiter__(self) -> Self:
        return self

    @abc.abstractmethod
    async def __anext__(self) -> tuple[str, Message]:
        """The next ``(channel, message)``; waits until one is broadcast."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop listening; a pending ``__anext__`` ends with StopAsyncIteration."""


class BlockingPublisher(abc.ABC):
    """Publishes from one thread, blocking it, to a queue by name (the default exchange); see
    `Transport.blocking_publisher`. Its promise is `Transport.publish`'s: it returns once the broker has the
    message, and raises `ConnectionLost` (the message may or may not have been stored) or `TransportClosed`."""

    @abc.abstractmethod
    def publish(self, message: Message, queue: str) -> None:
        """Put ``message`` on ``queue``; returns once the broker has it."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; later publishes raise `TransportClosed`. Idempotent, from any thread."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where a transport's broker is, as ``inspect stats`` reports it (kombu's connection info); no password."""

    scheme: str
    hostname: str | None
    port: int | None
    userid: str | None
    virtual_host: str
    ssl: bool


class Transport(AsyncResource):
    """A connection to one broker.

    Constructors store their arguments and do no I/O; ``connect()`` (or ``async with``) opens the link.

    Attributes:
        url: the broker URL with any password replaced by ``***`` (safe to log).
        has_broadcast: True when ``fanout``/``subscribe`` work on this broker.
        has_delayed_delivery: True when ``publish(..., not_before=t)`` keeps the message in the broker,
            invisible, until ``t`` (so workers need not hold ETA tasks in memory).
    """

    url: str
    has_broadcast: bool = True
    has_delayed_delivery: bool = False

    # What a URL may leave implicit, as `address` fills it in: a network broker's host, its virtual host, and
    # the schemes that mean TLS. The defaults suit an embedded broker (a file has no host).
    default_host: str | None = None
    default_virtual_host: str = "0"
    tls_schemes: frozenset[str] = frozenset()

    def address(self) -> BrokerAddress:
        """Where the broker is, read from ``url`` and the class's defaults above."""
        parts = urlsplit(self.url)
        scheme = parts.scheme.lower()
        return BrokerAddress(
            scheme=scheme,
            hostname=parts.hostname or self.default_host,
            port=parts.port,
            userid=parts.username,
            virtual_host=parts.path.lstrip("/") or self.default_virtual_host,
            ssl=scheme in self.tls_schemes,
        )

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the link to the broker. Raises `ConnectionLost` when it cannot be reached."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release everything; idempotent. Open consumers and subscriptions end."""

    @abc.abstractmethod
    async def declare(self, queue: str) -> None:
        """Make sure ``queue`` exists (bound to the default/direct exchange of the same name)."""

    @abc.abstractmethod
    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Also route messages published to ``exchange`` with ``routing_key`` to ``queue`` (a direct binding).

        Bindings live in the broker: every process publishing to ``exchange`` honours them. Binding twice is
        the same as binding once.
        """

    @abc.abstractmethod
    async def delete(self, queue: str) -> None:
        """Remove ``queue``: its bindings (at least those this transport made) and its waiting messages.

        For short-lived queues (remote-control replies). Deleting a queue that does not exist does nothing.
        """

    @abc.abstractmethod
    async def publish(
        self,
        message: Message,
        routing_key: str,
        exchange: str = "",
        *,
        not_before: float | None = None,
    ) -> None:
        """Put ``message`` on the queues ``exchange`` routes ``routing_key`` to; returns once the broker has it.

        ``exchange=""`` (the default exchange) means the queue named ``routing_key``; a named exchange routes
        through its bindings, and a message no queue is bound for is dropped.

        ``not_before`` (a Unix time) is a hint: transports with ``has_delayed_delivery`` keep the message
        invisible until then; the others deliver it at once and the worker waits.
        """

    async def publish_many(self, items: Sequence[tuple[Message, str, str, float | None]]) -> None:
        """`publish` each ``(message, routing_key, exchange, not_before)``; returns once the broker has them all.

        The default publishes them concurrently (transports that batch concurrent publishes share round trips);
        a transport may do better. A failure raises after the publishes that were under way ended: some of the
        messages may have been stored, as when one `publish` fails.
        """
        results = await asyncio.gather(
            *(self.publish(m, key, exchange, not_before=when) for m, key, exchange, when in items),
            return_exceptions=True,
        )
        for outcome in results:
            if isinstance(outcome, BaseException):
                raise outcome

    def blocking_publisher(self) -> BlockingPublisher | None:
        """A publisher for the calling thread only, which blocks that thread on a connection of its own (the
        sync facades' direct path, `celeriac.app.direct`); None when this transport has none (the default).

        Made from this transport's settings; `close` closes every publisher it made. No I/O.
        """
        return None

    @abc.abstractmethod
    def consume(self, queues: Sequence[str], prefetch: int) -> QueueConsumer:
        """A consumer of ``queues`` (earlier queues first when several have messages, on brokers that order
        queues; RabbitMQ shares the window between them)."""

    @abc.abstractmethod
    async def fanout(self, channel: str, message: Message) -> None:
        """Broadcast ``message`` to every current subscriber of ``channel``."""

    async def fanout_counted(self, channel: str, message: Message) -> int | None:
        """`fanout`, and how many subscribers received it when the broker says (Redis), else None."""
        await self.fanout(channel, message)
        return None

    @abc.abstractmethod
    async def subscribe(self, channels: Sequence[str], name: str | None = None) -> Subscription:
        """Start listening on ``channels``; messages broadcast after this returns are received.

        ``name`` is a stable name for the subscriber's queue on brokers that give each subscriber a queue
        (RabbitMQ: the worker's ``<hostname>.celery.pidbox``); brokers without such queues need none.
        """

    @abc.abstractmethod
    async def purge(self, queue: str) -> int:
        """Delete every ready message in ``queue``; return how many."""

    @abc.abstractmethod
    async def size(self, queue: str) -> int:
        """How many messages wait in ``queue`` (not counting delivered, un-acked ones)."""
