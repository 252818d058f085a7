"""Producer: publishes task messages on one transport, declaring each destination queue once."""

from __future__ import annotations

import asyncio

from celeriac.protocol.message import Message
from celeriac.transports.base import Transport


class Producer:
    """Publishes on ``transport``; declares each queue once (as kombu's producers do).

    The first publish to a queue declares it; concurrent first publishes share that one declaration instead of
    each opening a connection for it.
    """

    def __init__(self, transport: Transport, declare: bool = True) -> None:
        self.transport = transport
        self._declare = declare
        self._declared: dict[str, asyncio.Future[None]] = {}

    async def publish(
        self,
        message: Message,
        queue: str,
        routing_key: str | None = None,
        exchange: str = "",
        not_before: float | None = None,
    ) -> None:
        """Declare ``queue`` on first use, then publish; returns once the broker has the message."""
        if self._declare:
            await self._ensure_declared(queue)
        await self.transport.publish(message, routing_key or queue, exchange, not_before=not_before)

    async def _ensure_declared(self, queue: str) -> None:
        declared = self._declared.get(queue)
        if declared is None:
            declared = asyncio.ensure_future(self.transport.declare(queue))
            self._declared[queue] = declared
            try:
                await asyncio.shield(declared)
            except BaseException:
                if declared.done() and (declared.cancelled() or declared.exception() is not None):
                    del self._declared[queue]  # let the next publish try again
                raise
            return
        await asyncio.shield(declared)
