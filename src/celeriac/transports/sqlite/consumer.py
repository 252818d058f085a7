"""The SQLite broker's consumer: leases rows of its queues and hands them out as deliveries.

A consumer leases for one owner id; at most ``prefetch`` of its deliveries are un-acked at a time, and the
transport renews their leases while it lives (see `celeriac.transports.sqlite.transport`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from celeriac._sqlite.thread import SQLiteThread
from celeriac._sqlite.watch import IDLE_RECHECK, MIN_POLL, ChangeWatcher
from celeriac.errors import CeleriacError, DecodeError
from celeriac.protocol.message import Message
from celeriac.transports.base import Delivery, QueueConsumer, TransportOptions, settled_future
from celeriac.transports.sqlite import ops
from celeriac.transports.sqlite.ops import LeasedRow
from celeriac.transports.sqlite.owners import new_owner
from celeriac.transports.sqlite.rows import row_message

log = logging.getLogger("celeriac.transports.sqlite")


class ConsumerHost(Protocol):
    """What a consumer needs from its transport (`celeriac.transports.sqlite.transport.SQLiteTransport`)."""

    options: TransportOptions
    thread: SQLiteThread
    watcher: ChangeWatcher
    lease_batch: int

    @property
    def is_open(self) -> bool:
        """Whether the transport is connected and not closed."""

    async def declare(self, queue: str) -> None:
        """Bind ``queue`` to the exchange of its own name."""

    def ack_soon(self, owner: str, row_id: int) -> asyncio.Future[None]:
        """Queue the ack of a leased row; the future completes with its commit."""

    async def release(self, releases: list[tuple[str, list[int], list[int]]]) -> None:
        """Give leases back: (owner, handed-out row ids, never handed-out row ids) each."""

    async def dead_letter(self, owner: str, row_id: int, reason: str) -> None:
        """Move a leased row to ``dead_letters``."""

    def forget_consumer(self, consumer: SQLiteConsumer) -> None:
        """The consumer is cancelled and holds no un-acked delivery: the transport can forget it."""


class SQLiteDelivery(Delivery):
    """One leased row. ``delivery_tag`` is the row id (ids are never reused)."""

    def __init__(self, consumer: SQLiteConsumer, message: Message, row: LeasedRow) -> None:
        self.message = message
        self.queue, self.exchange, self.routing_key = row.queue, row.exchange, row.routing_key
        self.redelivered = row.deliveries > 1
        self.delivery_tag = str(row.id)
        self.row_id = row.id
        self._consumer = consumer
        self._settled = False

    async def ack(self) -> None:
        """Delete the row (batched with concurrent acks); returns after the commit."""
        if not self._settled:
            self._settled = True
            await self._consumer._ack(self)

    def ack_soon(self) -> asyncio.Future[None]:
        """`ack` started now, as the future of its group commit (no task per message)."""
        if self._settled:
            return settled_future()
        self._settled = True
        return self._consumer._ack_soon(self)

    async def reject(self, requeue: bool = False) -> None:
        """Clear the lease (``requeue``: deliverable now), else move the row to ``dead_letters``."""
        if not self._settled:
            self._settled = True
            await self._consumer._reject(self, requeue)


class SQLiteConsumer(QueueConsumer):
    """Leases rows of its queues for one owner id and hands them out, at most ``prefetch`` un-acked."""

    def __init__(self, transport: ConsumerHost, queues: Sequence[str], prefetch: int) -> None:
        self.owner = new_owner()
        self._transport = transport
        self._queues = tuple(dict.fromkeys(queues))
        self._prefetch = prefetch
        self._unseen: deque[SQLiteDelivery] = deque()  # leased, not handed out yet
        self._unacked: dict[int, SQLiteDelivery] = {}  # leased and not settled (includes _unseen)
        self._wake = asyncio.Event()
        self._cancelled = False
        self._fetching: asyncio.Task[None] | None = None
        self._version = -1
        self._next_hold_end: float | None = None
        transport.watcher.listen(self._wake)

    @property
    def queues(self) -> tuple[str, ...]:
        return self._queues

    @property
    def held_ids(self) -> list[int]:
        """Row ids whose leases this consumer holds (renewed while the transport lives)."""
        return list(self._unacked)

    def set_prefetch(self, prefetch: int) -> None:
        self._prefetch = prefetch
        self._wake.set()

    async def add_queue(self, queue: str) -> None:
        await self._transport.declare(queue)
        if queue not in self._queues:
            self._queues = (*self._queues, queue)
            self._wake.set()

    async def remove_queue(self, queue: str) -> None:
        self._queues = tuple(q for q in self._queues if q != queue)

    async def __anext__(self) -> SQLiteDelivery:
        while True:
            self._wake.clear()  # before looking: whatever happens from here on wakes the wait below
            if self._unseen:
                return self._unseen.popleft()
            if self._cancelled:
                raise StopAsyncIteration
            room = self._room()
            if room <= 0:
                await self._wake.wait()  # an ack, a reject, set_prefetch or cancel
                continue
            if self._fetching is None:
                self._fetching = asyncio.create_task(self._fetch(room))
            # shield: if this __anext__ is cancelled, the fetch still files its rows for the next call.
            await asyncio.shield(self._fetching)
            if not self._unseen and not self._cancelled:
                await self._transport.watcher.wait(self._wake, self._version, self._idle_timeout())

    async def cancel(self) -> None:
        """Stop fetching and give back the leases of rows not handed out yet (they stay undelivered)."""
        if self._cancelled:
            return
        self._cancelled = True
        self._wake.set()
        if self._fetching is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._fetching)
        unseen = [d.row_id for d in self._unseen]
        self._forget(*self._unseen)
        self._unseen.clear()
        if unseen and self._transport.is_open:
            await self._transport.release([(self.owner, [], unseen)])

    def shutdown(self) -> tuple[str, list[int], list[int]]:
        """End iteration now; the release the transport's close must do: (owner, handed out, unseen)."""
        self._cancelled = True
        self._wake.set()
        self._transport.watcher.unlisten(self._wake)
        unseen = [d.row_id for d in self._unseen]
        handed_out = [row_id for row_id in self._unacked.keys() - set(unseen)]
        self._unseen.clear()
        self._unacked.clear()
        return self.owner, handed_out, unseen

    async def wait_fetched(self) -> None:
        """Wait for a fetch in flight to file its rows."""
        if self._fetching is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._fetching)

    def _room(self) -> int:
        """How many rows to lease now; 0 means wait for acks first."""
        batch = self._transport.lease_batch
        if self._prefetch <= 0:
            return batch
        room = min(self._prefetch - len(self._unacked), batch)
        # With 3/4 of the window still in hand the application is busy: wait for a quarter of it to free up
        # rather than leasing a few rows per transaction (no-op worker, prefetch 256: 33 -> 64 rows a lease).
        if self._unacked and room < min(self._prefetch, batch) // 4:
            return 0
        return room

    def _idle_timeout(self) -> float:
        if self._next_hold_end is None:
            return IDLE_RECHECK
        return min(max(self._next_hold_end - time.time(), 0.0) + MIN_POLL, IDLE_RECHECK)

    async def _fetch(self, room: int) -> None:
        try:
            await self._lease(room)
        finally:
            self._fetching = None

    async def _lease(self, room: int) -> None:
        transport = self._transport
        options = transport.options
        leased = await transport.thread.run(
            ops.lease, self._queues, room, self.owner, options.visibility_timeout, options.max_deliveries
        )
        self._version, self._next_hold_end = leased.version, leased.next_hold_end
        for row in leased.dead:
            log.warning(
                "message %d of queue %r dead-lettered: delivered %d times (max_deliveries=%d)",
                row.id, row.queue, row.deliveries, options.max_deliveries,
            )  # fmt: skip
        for row in leased.malformed:
            log.error("message %d of queue %r is malformed, dead-lettered: %s", row.id, row.queue, row.problem)
        for row in leased.rows:
            try:
                message = row_message(row.body, row.content_type, row.content_encoding, row.headers, row.properties)
            except DecodeError as exc:  # cannot happen to rows we wrote; keep it, but out of the way
                log.error("message %d of queue %r is corrupt, dead-lettered: %s", row.id, row.queue, exc)
                await transport.thread.run(ops.dead_letter, self.owner, row.id, f"corrupt row: {exc}")
                continue
            delivery = SQLiteDelivery(self, message, row)
            self._unacked[row.id] = delivery
            self._unseen.append(delivery)
        if self._cancelled and self._unseen and transport.is_open:
            # cancel() ran while this fetch was in flight: these rows were never handed out.
            unseen = [d.row_id for d in self._unseen]
            self._forget(*self._unseen)
            self._unseen.clear()
            await transport.release([(self.owner, [], unseen)])

    async def _ack(self, delivery: SQLiteDelivery) -> None:
        await self._ack_soon(delivery)

    def _ack_soon(self, delivery: SQLiteDelivery) -> asyncio.Future[None]:
        try:
            future = self._transport.ack_soon(self.owner, delivery.row_id)
        except CeleriacError as exc:  # closed: report it through the future, as an awaited ack raises it
            self._forget(delivery)
            return settled_future(exc)
        future.add_done_callback(lambda _: self._forget(delivery))
        return future

    async def _reject(self, delivery: SQLiteDelivery, requeue: bool) -> None:
        try:
            if requeue:
                await self._transport.release([(self.owner, [delivery.row_id], [])])
            else:
                await self._transport.dead_letter(self.owner, delivery.row_id, "rejected")
        finally:
            self._forget(delivery)

    def _forget(self, *deliveries: SQLiteDelivery) -> None:
        for delivery in deliveries:
            self._unacked.pop(delivery.row_id, None)
        self._wake.set()  # the prefetch window has room again
        if self._cancelled and not self._unacked:
            self._transport.watcher.unlisten(self._wake)
            self._transport.forget_consumer(self)
