"""Group concurrent requests into one round trip: what arrives while one batch is on the wire goes in the next.

Transport-neutral: the Redis transport batches its acks and publishes with it (AMQP publisher confirms next).
There is no timer: a lone request is sent at once, and under load the batch grows by itself to however many
requests arrived during the previous round trip (up to ``max_batch``). While requests come one at a time,
`Batcher.submit` sends each from its caller's own task; once they overlap, they go through the flushing task, so
that requests woken together by the end of one round trip share the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from celeriac.errors import TransportClosed

T = TypeVar("T")


class _Together:
    """The settling side of one future for many items (`Batcher.enqueue_many`): done once every item's batch
    succeeded, or the first failed. `Batcher._flush` settles it as it settles an item's own future."""

    __slots__ = ("_future", "_left")

    def __init__(self, future: asyncio.Future[None], items: int) -> None:
        self._future = future
        self._left = items

    def done(self) -> bool:
        return self._future.done()

    def set_result(self, _: None) -> None:
        self._left -= 1
        if self._left == 0:
            self._future.set_result(None)

    def set_exception(self, exc: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(exc)


class Batcher(Generic[T]):
    """Sends items through ``send``, many per call, one call at a time, in the order they were given.

    Args:
        send: one round trip for a batch; its exception is raised by every `submit` of that batch.
        max_batch: most items per call.
        name: names the flushing task (for debugging).
    """

    def __init__(self, send: Callable[[Sequence[T]], Awaitable[None]], max_batch: int, name: str) -> None:
        self._send = send
        self._max_batch = max_batch
        self._name = name
        self._pending: list[tuple[T, asyncio.Future[None] | _Together]] = []
        self._flusher: asyncio.Task[None] | None = None
        # Set while `submit` sends a lone item from its caller's task; done when that round trip ended.
        self._inline: asyncio.Future[None] | None = None
        # The last round trip carried more than one item, or others queued behind it: requests overlap now.
        self._contended = False
        self._closed = False

    def _idle(self) -> bool:
        """Nothing is on the wire, and nothing waits to be sent."""
        return self._inline is None and not self._pending and (self._flusher is None or self._flusher.done())

    def enqueue(self, item: T) -> asyncio.Future[None]:
        """Queue ``item`` for the next batch; the future completes (or fails) with that batch's round trip.

        Raises:
            TransportClosed: after `close`.
        """
        if self._closed:
            raise TransportClosed("the transport is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._inline is None:  # else the lone send starts the flusher when it ends (one round trip at a time)
            self._start_flusher()
        return future

    def enqueue_many(self, items: Sequence[T]) -> asyncio.Future[None]:
        """`enqueue` each of ``items``, in order, under one future: it completes once every item's batch
        succeeded, or fails with the first batch that failed (one future instead of one per item).

        Raises:
            TransportClosed: after `close`.
        """
        if self._closed:
            raise TransportClosed("the transport is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not items:
            future.set_result(None)
            return future
        together = _Together(future, len(items))
        self._pending.extend((item, together) for item in items)
        if self._inline is None:
            self._start_flusher()
        return future

    async def submit(self, item: T) -> None:
        """Send ``item`` with the next batch; returns once that batch's round trip succeeded, else raises.

        When nothing is on the wire and the last round trip had no company, ``item`` is sent at once from the
        caller's own task, as a batch of one: a caller cancelled during that round trip may or may not have sent
        its item (as when the link breaks), and items queued behind it are sent all the same. An item queued
        behind a round trip is sent even when its caller stops waiting.

        Raises:
            TransportClosed: after `close`, or when the transport closed before the item could be sent.
        """
        if self._contended or self._closed or not self._idle():
            # A caller that stops waiting cancels only its own future: the flusher sends the item all the same
            # (it never looks at a future before it settles it), so no shield is needed (one less future and
            # two callbacks per send).
            await self.enqueue(item)
            return
        # No task hop when idle: a new flusher task would send the lone item one event-loop iteration later
        # (sequential adelay() against Redis on the 2-core VM: the LPUSH went out ~25 us later, p50).
        # Not when contended: after a batch, its senders wake together, and the first one sent alone would make
        # the others wait a whole round trip (64 concurrent senders: batches of 1 and 63 instead of 64).
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        done = self._inline = asyncio.get_running_loop().create_future()
        try:
            await self._send([item])
            if task is not None and task.cancelling() > cancelling:
                # ``send`` swallowed a cancel (a client library may: redis-py while connecting): still the caller's.
                raise asyncio.CancelledError
        finally:
            self._inline = None
            self._contended = bool(self._pending)
            if self._pending:  # what arrived meanwhile goes next, even when this caller was cancelled
                self._start_flusher()
            done.set_result(None)

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=self._name)

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
            finally:
                self._contended = len(batch) > 1 or bool(self._pending)

    async def close(self, timeout: float = 5.0) -> None:
        """Send what is pending (waiting at most ``timeout`` s), then refuse new items. Idempotent."""
        self._closed = True
        try:
            async with asyncio.timeout(timeout):
                if self._inline is not None:
                    await asyncio.shield(self._inline)  # it starts the flusher for what queued behind it
                flusher = self._flusher
                if flusher is not None and not flusher.done():
                    await asyncio.shield(flusher)
        except Exception:
            if self._flusher is not None:
                self._flusher.cancel()
        for _, future in self._pending:
            if not future.done():
                future.set_exception(TransportClosed("the transport closed before the request was sent"))
        self._pending.clear()
