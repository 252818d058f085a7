"""EarlyAcks: the early acks still on the wire; each failure logged as it lands, all awaited at warm shutdown.

An early ack (the default ack mode) is sent as the body starts and not waited for, so the broker round trip
is off the critical path and the pool slot is free as soon as the body ends.
"""

from __future__ import annotations

import asyncio

from celeriac.worker.request import Request


class EarlyAcks:
    """Sends early acks and remembers the ones not landed yet."""

    def __init__(self) -> None:
        self._pending: dict[asyncio.Future[None], Request] = {}

    def send(self, request: Request) -> None:
        """Ack ``request`` now without waiting (a no-op when it is already settled)."""
        future = request.ack_soon()
        if future is None:
            return
        if future.done():
            request.ack_sent(future)
        else:
            self._pending[future] = request
            future.add_done_callback(self._landed)

    def _landed(self, future: asyncio.Future[None]) -> None:
        request = self._pending.pop(future, None)
        if request is not None:
            request.ack_sent(future)

    async def wait(self) -> None:
        """Wait until every early ack sent so far is done (each failure is logged as it happens)."""
        while self._pending:
            await asyncio.wait(list(self._pending))
