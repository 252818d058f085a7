"""Group concurrent requests into one round trip: what arrives while one batch is on the wire goes in the next.

Used for acks and publishes. There is no timer: a lone request is sent at once, and under load the batch
grows by itself to however many requests arrived during the previous round trip (up to ``max_batch``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from celeriac.errors import TransportClosed

T = TypeVar("T")


class Batcher(Generic[T]):
    """Sends items through ``send``, many per call.

    Args:
        send: one round trip for a batch; its exception is raised by every `submit` of that batch.
        max_batch: most items per call.
        name: names the flushing task (for debugging).
    """

    def __init__(self, send: Callable[[Sequence[T]], Awaitable[None]], max_batch: int, name: str) -> None:
        self._send = send
        self._max_batch = max_batch
        self._name = name
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    def enqueue(self, item: T) -> asyncio.Future[None]:
        """Queue ``item`` for the next batch; the future completes (or fails) with that batch's round trip.

        Raises:
            TransportClosed: after `close`.
        """
        if self._closed:
            raise TransportClosed("the transport is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=self._name)
        return future

    async def submit(self, item: T) -> None:
        """Send ``item`` with the next batch; returns once that batch's round trip succeeded, else raises."""
        # Shielded: a caller that stops waiting does not take its item out of a batch already on the wire.
        await asyncio.shield(self.enqueue(item))

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                await self._send([item for item, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            except BaseException:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(TransportClosed("the transport closed during the round trip"))
                raise
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    async def close(self, timeout: float = 5.0) -> None:
        """Send what is pending (waiting at most ``timeout`` s), then refuse new items. Idempotent."""
        self._closed = True
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            try:
                await asyncio.wait_for(asyncio.shield(flusher), timeout)
            except Exception:
                flusher.cancel()
        for _, future in self._pending:
            if not future.done():
                future.set_exception(TransportClosed("the transport closed before the request was sent"))
        self._pending.clear()
