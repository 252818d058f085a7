"""Producer: publishes task messages on one transport, declaring each destination queue once."""

from __future__ import annotations

from celeriac.protocol.message import Message
from celeriac.transports.base import Transport


class Producer:
    """Publishes on ``transport``; remembers which queues it already declared (as kombu's producers do)."""

    def __init__(self, transport: Transport, declare: bool = True) -> None:
        self.transport = transport
        self._declare = declare
        self._declared: set[str] = set()

    async def publish(
        self,
        message: Message,
        queue: str,
        routing_key: str | None = None,
        exchange: str = "",
        not_before: float | None = None,
    ) -> None:
        """Declare ``queue`` on first use, then publish; returns once the broker has the message."""
        if self._declare and queue not in self._declared:
            await self.transport.declare(queue)
            self._declared.add(queue)
        await self.transport.publish(message, routing_key or queue, exchange, not_before=not_before)
