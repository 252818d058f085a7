"""Group concurrent acks into one round trip: acks that arrive while one batch is on the wire go in the next.

There is no timer: a lone ack is sent at once, and under load the batch size grows by itself to however many
acks arrived during the previous round trip (up to ``max_batch``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from celeriac.errors import TransportClosed

Send = Callable[[Sequence[tuple[str, int]]], Awaitable[None]]


class AckBatcher:
    """Sends ``(delivery tag, delivery count)`` acks through ``send``, many per call.

    Args:
        send: one round trip for a batch; its exception is raised by every `ack` of that batch.
        max_batch: most acks per call.
    """

    def __init__(self, send: Send, max_batch: int = 1000) -> None:
        self._send = send
        self._max_batch = max_batch
        self._pending: list[tuple[str, int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    async def ack(self, tag: str, count: int) -> None:
        """Ack one delivery; returns once Redis has applied it. Raises what the batch's round trip raised."""
        if self._closed:
            raise TransportClosed("the transport is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((tag, count, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="celeriac-redis-acks")
        # Shielded: a caller that gives up waiting does not take the ack out of a batch already on the wire.
        await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                await self._send([(tag, count) for tag, count, _ in batch])
            except Exception as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            except BaseException:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(TransportClosed("the transport closed during the ack"))
                raise
            else:
                for *_, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def close(self, timeout: float = 5.0) -> None:
        """Send what is pending (waiting at most ``timeout`` s), then refuse new acks. Idempotent."""
        self._closed = True
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            try:
                await asyncio.wait_for(asyncio.shield(flusher), timeout)
            except (TimeoutError, Exception):
                flusher.cancel()
        for *_, future in self._pending:
            if not future.done():
                future.set_exception(TransportClosed("the transport closed before the ack was sent"))
        self._pending.clear()
