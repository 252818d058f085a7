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
        if not self.declared(queue):  # the check alone once declared: no shield, no extra future per publish
            await self._ensure_declared(queue)
        await self.transport.publish(message, routing_key or queue, exchange, not_before=not_before)

    def declared(self, queue: str) -> bool:
        """Whether a publish to ``queue`` needs no declaration first (it was declared, or this producer declares
        nothing). No I/O, callable from any thread."""
        if not self._declare:
            return True
        declared = self._declared.get(queue)
        return declared is not None and declared.done() and not declared.cancelled() and declared.exception() is None

    async def declare(self, queue: str) -> None:
        """Declare ``queue`` once per producer (when it declares queues at all)."""
        if self._declare:
            await self._ensure_declared(queue)

    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Bind ``queue`` to ``exchange`` for ``routing_key`` once per producer (when it declares queues)."""
        key = f"{queue}\x00{exchange}\x00{routing_key}"
        if not self._declare or key in self._declared:
            return
        await self._ensure_declared(queue)
        bound = asyncio.ensure_future(self.transport.bind(queue, exchange, routing_key))
        self._declared[key] = bound
        try:
            await asyncio.shield(bound)
        except BaseException:
            if bound.done() and (bound.cancelled() or bound.exception() is not None):
                del self._declared[key]  # let the next publish try again
            raise

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
