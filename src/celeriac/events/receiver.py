"""EventReceiver: an async iterator of the events broadcast on the ``celeryev`` exchange (celery-wire.md §4.6).

A message body may be one event (a JSON object) or a batch (an array, routing key ``task.multi``); the receiver
yields events one by one, each with ``local_received`` (this process's time.time()) added, and ``hostname``
filled from the message header when the body lacks it. A body that cannot be read is logged and skipped.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Protocol, Self

from celeriac.errors import ProtocolError
from celeriac.events.model import EXCHANGE, Event
from celeriac.protocol.message import Message
from celeriac.protocol.serializers import loads, normalize_accept
from celeriac.transports.base import Subscription, Transport

log = logging.getLogger("celeriac.events")


class Clock(Protocol):
    """The Lamport clock a receiver keeps in step with the events it sees."""

    def adjust(self, other: int) -> int: ...


def events_in(message: Message, accept: frozenset[str]) -> list[Event]:
    """The events one broker message carries (object or array body). Raises ProtocolError on a bad body."""
    body: Any = loads(message.body, message.content_type, message.content_encoding, accept)
    items = body if isinstance(body, list) else [body]
    if not all(isinstance(item, dict) for item in items):
        raise ProtocolError("an event must be a JSON object (or an array of them)")
    hostname = message.headers.get("hostname")
    events: list[Event] = []
    for item in items:
        event: Event = dict(item)
        if hostname and not event.get("hostname"):
            event["hostname"] = hostname
        events.append(event)
    return events


class EventReceiver:
    """Events whose routing key matches one of ``routing_keys`` (``#``: every event; ``worker.#``: workers').

    Args:
        transport: a connected transport; the receiver subscribes on it but does not close it.
        routing_keys: routing-key patterns (``#`` and ``*`` wildcards).
        clock: when given, adjusted with every event's ``clock``.
        accept: content types to read (JSON by default).

    Use ``async with EventReceiver(transport) as events: async for event in events: ...``.
    """

    def __init__(
        self,
        transport: Transport,
        routing_keys: Sequence[str] = ("#",),
        *,
        clock: Clock | None = None,
        accept: Sequence[str] = ("json",),
    ) -> None:
        self.transport = transport
        self.channels = [f"{EXCHANGE}/{key}" for key in routing_keys]
        self.clock = clock
        self.accept = normalize_accept(accept)
        self._subscription: Subscription | None = None
        self._ready: deque[Event] = deque()

    async def open(self) -> None:
        """Subscribe; events broadcast after this returns are received."""
        if self._subscription is None:
            self._subscription = await self.transport.subscribe(self.channels)

    async def close(self) -> None:
        """Stop listening; iteration ends. Idempotent."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        """The next event; waits for one. StopAsyncIteration once closed; `ConnectionLost` if the link broke."""
        while not self._ready:
            if self._subscription is None:
                raise StopAsyncIteration
            _, message = await anext(self._subscription)
            try:
                events = events_in(message, self.accept)
            except ProtocolError as exc:
                log.warning("skipped an event message that cannot be read: %s", exc)
                continue
            received = time.time()
            for event in events:
                event["local_received"] = received
                clock = event.get("clock")
                if self.clock is not None and isinstance(clock, int) and not isinstance(clock, bool):
                    self.clock.adjust(clock)
            self._ready.extend(events)
        return self._ready.popleft()
