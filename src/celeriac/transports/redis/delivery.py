"""A message fetched from a Redis list (`RedisDelivery`), and what the consumer makes of a fetch script's outcome.

`unpack` turns an `Outcome` into deliveries (logging the messages the script dead-lettered); `bury` moves an
envelope the consumer cannot read from ``unacked`` to its queue's dead-letter list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any, Protocol

from celeriac.errors import DecodeError, TransportError
from celeriac.protocol.fields import parse_datetime
from celeriac.transports.base import Delivery, settled_future
from celeriac.transports.redis import envelope as redis_envelope
from celeriac.transports.redis.envelope import Envelope
from celeriac.transports.redis.fetch import Fetched, Outcome
from celeriac.transports.redis.ops import RedisOps

log = logging.getLogger("celeriac.transports.redis")


class Settler(Protocol):
    """What a delivery needs from its consumer: settling it (see `RedisConsumer.settle`)."""

    async def settle(self, delivery: RedisDelivery, requeue: bool | None) -> None: ...

    def start_settle(self, delivery: RedisDelivery, requeue: bool | None) -> asyncio.Future[Any] | None: ...


class RedisDelivery(Delivery):
    """One message fetched from a Redis list; ack or reject it once.

    Attributes:
        delivery_count: how many times the message has been fetched (by celeriac) including this time.
    """

    def __init__(self, consumer: Settler, envelope: Envelope, fetched: Fetched) -> None:
        self.message = envelope.message
        self.queue = fetched.queue
        self.exchange = envelope.exchange
        self.routing_key = envelope.routing_key
        self.delivery_tag = envelope.delivery_tag
        self.delivery_count = fetched.count
        # Restored after its consumer died, and due now: the consumer fetches nothing beside it while it is out.
        # One the worker will hold (an ETA later than a second from now) cannot kill it yet: no such wait.
        self.suspect = fetched.suspect and not _due_later(envelope.message.headers.get("eta"))
        self.redelivered = envelope.redelivered or fetched.count > 1
        self.envelope = envelope
        self.list_key = fetched.list_key
        self._consumer = consumer
        self.settled = False
        self._settling = False

    async def ack(self) -> None:
        """Remove the message for good (batched with concurrent acks). A second call does nothing."""
        await self._consumer.settle(self, requeue=None)

    def ack_soon(self) -> asyncio.Future[None]:
        """`ack` started now, as the future of its batch (no task per message)."""
        try:
            operation = self._consumer.start_settle(self, requeue=None)
        except TransportError as exc:  # closed: report it through the future, as an awaited ack raises it
            return settled_future(exc)
        return settled_future() if operation is None else operation

    async def reject(self, requeue: bool = False) -> None:
        """Requeue: LPUSH back on its list (back of the queue), marked redelivered; else drop (an ack)."""
        await self._consumer.settle(self, requeue=requeue)

    def begin(self) -> bool:
        """Claim the right to settle; False when it is settled or being settled."""
        if self.settled or self._settling:
            return False
        self._settling = True
        return True

    def end(self, done: bool) -> None:
        """Finish a settle attempt: ``done`` when Redis applied it, else it may be tried again."""
        self._settling = False
        self.settled = done


def _due_later(eta: object) -> bool:
    """True when ``eta`` (a task's ``eta`` header) is more than a second ahead."""
    if not isinstance(eta, str):
        return False
    try:
        return parse_datetime(eta).timestamp() > time.time() + 1.0
    except DecodeError:
        return False


def _task_id(raw: bytes) -> str:
    """The task id in a raw envelope, for log lines (``?`` when there is none)."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return str(json.loads(raw).get("headers", {}).get("id") or "?")
    return "?"


def unpack(
    outcome: Outcome, consumer: Settler, ops: RedisOps
) -> tuple[list[RedisDelivery], list[tuple[Fetched, DecodeError]]]:
    """The deliveries of ``outcome`` for ``consumer``, and the messages it moved that cannot be read (for `bury`).

    Logs each message the script moved to a dead-letter list instead.
    """
    for item in outcome.dead:
        target = ops.keys.dead_letter(item.queue)
        if item.count:
            log.warning(
                "task %s from queue %r moved to dead-letter list %r after %d deliveries (max_deliveries=%d)",
                _task_id(item.raw),
                item.queue,
                target,
                item.count - 1,
                ops.settings.max_deliveries,
            )
        else:
            log.error(
                "unparsable message (no delivery tag could be read) in queue %r moved to dead-letter list %r",
                item.queue,
                target,
            )
    deliveries: list[RedisDelivery] = []
    unreadable: list[tuple[Fetched, DecodeError]] = []
    for item in outcome.delivered:
        try:
            envelope = redis_envelope.decode(item.raw)
        except DecodeError as error:
            unreadable.append((item, error))
            continue
        deliveries.append(RedisDelivery(consumer, envelope, item))
    return deliveries, unreadable


async def bury(ops: RedisOps, item: Fetched, exc: DecodeError) -> None:
    """Move an unreadable delivered message from unacked to its queue's dead-letter list (left there without a tag)."""
    tag = ""
    with contextlib.suppress(ValueError, TypeError, AttributeError, KeyError):
        # Leniently: the bytes may not be UTF-8 (the very reason it is unreadable), its tag still is.
        tag = str(json.loads(item.raw.decode("utf-8", "surrogateescape"))["properties"]["delivery_tag"])
    target = ops.keys.dead_letter(item.queue)
    if tag and await ops.bury(tag, item.raw, item.queue, exc.reason):
        log.error("unreadable message in queue %r moved to %r: %s", item.queue, target, exc.reason)
    else:
        log.error("unreadable message in queue %r left in unacked: %s", item.queue, exc.reason)
