"""Consuming from Redis lists: the prefetch window, crash-safe fetches, blocking waits with the fetch armed
behind them, renewal of in-flight deliveries, ack/reject.

How a message travels (celery-wire.md §2.2, §2.5):

1. **Fetch.** The script `scripts.FETCH` pops up to the free prefetch window from the queue lists, in
   kombu's BRPOP order, and in the same atomic step records each message in ``unacked``/``unacked_index``
   and counts the delivery. A message is always in a list, in ``unacked``, or in a dead-letter list; a
   consumer that crashes, or a connection that drops, between two steps cannot lose it. With deliveries in
   flight the consumer waits for half the window to come free, at most `_FLOOR_WAIT` (held ETA deliveries widen
   the window and never free it). A *suspect* (restored after its consumer died) comes alone, and nothing is
   fetched beside it until it is settled (`_PROBATION` at most; not when it is held for a later ETA).
2. **Wait, armed.** A fetch that finds every list empty also *opens the consumer's claim* for the free window
   (same script). The consumer then blocks, without polling, on one ``BLMOVE key key RIGHT RIGHT`` per list (a
   rotation of the list onto itself: nothing is taken; it returns once the list is non-empty), each with the
   fetch script pipelined behind it on the same connection (`idle`, `wait`). When a list fills, Redis runs that
   *armed fetch* at once: the first one to run takes up to the open window and marks the claim taken; any
   other finds it taken and takes nothing. So a wake-up is one round trip, the messages are in ``unacked``
   before the consumer hears of them, and all armed fetches together stay within the window. While its claim
   is open, or taken but not yet heard of, the consumer does not fetch by itself, so its own fetches never
   overlap an armed one. No wake-up is lost: the claim opens only when a fetch found the lists empty, and
   BLMOVE returns at once for a list that is already non-empty. No message is duplicated: only the script
   takes messages, and it takes each once.
3. **Disarm.** Before an armed wait is abandoned (cancel, close, a queue added or removed, the prefetch
   changed, a lost connection) the consumer closes its claim (`scripts.CLOSE_CLAIM`): afterwards no armed
   fetch can take anything, and if one already had, the consumer first waits for its reply, so those
   messages reach the ready buffer (and are restored on cancel or close) instead of waiting in unacked.
4. **Renew.** While the consumer lives it re-scores its in-flight deliveries in ``unacked_index`` every
   ``renew_interval`` (``ZADD XX``), so a task that runs longer than ``visibility_timeout`` is not restored
   to another worker. When it dies the renewals stop and any live consumer's restorer
   (`restore.Restorer`) puts the messages back after ``visibility_timeout``.
5. **Settle.** Acks are batched (`celeriac.transports._batch.Batcher`); reject with requeue LPUSHes the message back on
   its list with ``redelivered`` set, as kombu does; reject without requeue is an ack (kombu's behaviour).

Connection loss: a command that finds its connection broken is retried once on a fresh one
(`celeriac._redis.client`; an armed wait with the same request id, so that it cannot claim twice: `wait`), so
a killed connection goes unnoticed. When Redis cannot be reached, ``__anext__`` raises `ConnectionLost` once;
iterating again reconnects. Un-acked deliveries stay ackable throughout, and are restored to their queues
when the transport closes. A fetch whose reply is lost after the script ran is recovered: the script records
each message in the transport's ``owned`` hash too, so a transport's sole consumer re-queues those it does not
know of before its next fetch (after a retried call or a lost armed reply), and a closing transport re-queues
all it still owns, retrying in the background while Redis is unreachable (`recover`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

from celeriac._redis.compat import raise_if_cancelled
from celeriac.errors import TransportError
from celeriac.transports._batch import Batcher
from celeriac.transports.base import QueueConsumer
from celeriac.transports.redis import envelope as redis_envelope
from celeriac.transports.redis.delivery import RedisDelivery, bury, unpack
from celeriac.transports.redis.fetch import Outcome
from celeriac.transports.redis.idle import ArmedWait
from celeriac.transports.redis.ops import RedisOps
from celeriac.transports.redis.recover import requeue_unknown

log = logging.getLogger("celeriac.transports.redis")

# Longest wait for half the window to come free before fetching what is free (seconds): at the ack rates where
# batching pays, half the window frees in far less; held deliveries may never free it.
_FLOOR_WAIT = 0.05
# Longest time a suspect delivery (restored after its consumer died) is out alone before fetching goes on (s).
_PROBATION = 10.0


class ConsumerHost(Protocol):
    """What a consumer needs from its transport."""

    ops: RedisOps
    acks: Batcher[tuple[str, int]]

    def check_open(self) -> None:
        """Raise TransportClosed once the transport is closed."""

    async def declare(self, queue: str) -> None:
        """Declare a queue (bind it to the exchange of the same name)."""

    def consumer_started(self, consumer: RedisConsumer) -> None:
        """The consumer is about to fetch for the first time (start the restorer)."""

    def consumer_finished(self, consumer: RedisConsumer) -> None:
        """The consumer is cancelled and holds no un-acked delivery: the transport can forget it."""

    def sole_consumer(self, consumer: RedisConsumer) -> bool:
        """True when ``consumer`` is the transport's only one (its owned deliveries are all this consumer's)."""


class RedisConsumer(QueueConsumer):
    """Deliveries from some queues with at most ``prefetch`` un-acked; see the module docstring.

    One task iterates a consumer; acks and rejects may come from any task.
    """

    def __init__(self, host: ConsumerHost, queues: Sequence[str], prefetch: int) -> None:
        self._host = host
        self._ops = host.ops
        self._settings = host.ops.settings
        self._queues = list(dict.fromkeys(queues))
        self._prefetch = prefetch
        self._ready: deque[RedisDelivery] = deque()
        self._in_flight: dict[str, RedisDelivery] = {}  # fetched, not settled (handed out or still ready)
        self._signal = asyncio.Event()  # something changed: credit, queues, a claim over, cancel, an error
        self._renewer: asyncio.Task[None] | None = None
        self._fetching: asyncio.Task[bool] | None = None
        self._cancelled = False
        self._version = 0  # bumped when the queues or the prefetch change
        self._idle = ArmedWait(self._ops, self)
        self._floor_since: float | None = None  # loop time since when the free credit has been below the floor
        self._probation: tuple[RedisDelivery, float] | None = None  # a suspect out alone, until (loop time)
        self._unaccounted = False  # a fetch reply may have been lost: owned messages this consumer does not know

    # -- QueueConsumer interface -------------------------------------------------------------------------------

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(self._queues)

    def set_prefetch(self, prefetch: int) -> None:
        self._prefetch = prefetch
        self._changed()

    async def add_queue(self, queue: str) -> None:
        self._host.check_open()
        await self._host.declare(queue)
        if queue not in self._queues:
            self._queues.append(queue)
            self._changed()

    async def remove_queue(self, queue: str) -> None:
        self._host.check_open()
        if queue in self._queues:
            self._queues.remove(queue)
            self._changed()

    async def cancel(self) -> None:
        """Stop fetching; messages fetched but not yet handed out go back to the front of their queues."""
        self._cancelled = True
        self._signal.set()
        await self._end_waits()
        await self._restore(list(self._ready))
        self._ready.clear()
        if not self._in_flight:
            self._finish()

    async def __anext__(self) -> RedisDelivery:
        if self._renewer is None and not self._cancelled:
            self._host.check_open()
            self._host.consumer_started(self)
            self._renewer = asyncio.create_task(self._renew(), name="celeriac-redis-renew")
        while True:
            raise_if_cancelled()
            self._signal.clear()
            if self._ready:
                return self._ready.popleft()
            if self._cancelled:
                raise StopAsyncIteration
            self._host.check_open()
            if await self._idle.wait(self._queues):  # armed: its fetches take what comes; woken when it is over
                await self._signal.wait()
                continue
            if self._probation is not None and not self._probation[0].settled:
                # A suspect is out: fetch nothing beside it (if it kills the worker, no innocent dies with it).
                left = self._probation[1] - asyncio.get_running_loop().time()
                if left > 0:
                    await self._wait(left)
                    continue
            self._probation = None
            credit = self._credit()
            if credit <= 0 or not self._queues:
                await self._signal.wait()
                continue
            # With deliveries in flight, wait for half the window to be free: one script call then moves several
            # messages, not one per freed slot (bench/README.md). Bounded: held deliveries (ETA, rate limit) never
            # free their slots, so half the window may never come free (5,000 held ones stopped a worker).
            if self._in_flight and credit < self._batch_floor():
                loop = asyncio.get_running_loop()
                if self._floor_since is None:
                    self._floor_since = loop.time()
                left = self._floor_since + _FLOOR_WAIT - loop.time()
                if left > 0:
                    await self._wait(left)
                    continue  # look again: woken (credit, cancel, queues) or out of time (then fetch what is free)
            self._floor_since = None
            # The fetch runs as a task of its own: if this call is cancelled (a wait_for around anext), the
            # messages the script already moved still reach the ready buffer instead of waiting in unacked
            # for the visibility timeout, and a claim it opens is known. The next call picks up the same task.
            if self._fetching is None:
                if self._unaccounted and self._host.sole_consumer(self):
                    await self._requeue_unaccounted()  # no fetch of ours on the wire: the unknown ones are lost
                self._fetching = asyncio.create_task(self._fetch(credit), name="celeriac-redis-fetch")
            fetching = self._fetching
            try:
                await asyncio.shield(fetching)
            finally:
                if fetching.done():
                    self._fetching = None

    async def _wait(self, timeout: float) -> None:
        """Wait for the signal at most ``timeout`` s (a timer, not `asyncio.wait_for`'s task: on the hot path)."""
        timer = asyncio.get_running_loop().call_later(timeout, self._signal.set)
        try:
            await self._signal.wait()
        finally:
            timer.cancel()

    def _changed(self) -> None:
        """The queues or the prefetch changed: an open claim is out of date (closed before the next fetch)."""
        self._version += 1
        self._signal.set()

    # -- for the armed waits (`idle.WaitHost`) -----------------------------------------------------------------

    @property
    def version(self) -> int:
        """Bumped each time the queues or the prefetch change."""
        return self._version

    @property
    def stopping(self) -> bool:
        """Cancelled or closing."""
        return self._cancelled

    def wake(self) -> None:
        """Wake the fetching loop."""
        self._signal.set()

    def reply_lost(self) -> None:
        """A fetch's reply may have been lost: re-queue what this consumer owns unknowingly before the next fetch."""
        self._unaccounted = True

    async def _requeue_unaccounted(self) -> None:
        try:
            await requeue_unknown(self._ops, self._in_flight)
            self._unaccounted = False
        except TransportError as exc:
            log.warning("could not re-queue deliveries of a lost fetch reply (trying again): %s", exc)

    # -- settling ----------------------------------------------------------------------------------------------

    async def settle(self, delivery: RedisDelivery, requeue: bool | None) -> None:
        """Ack (``requeue`` None), drop (False) or requeue (True) ``delivery``; repeated calls do nothing.

        The server call runs to its end even if the caller is cancelled meanwhile, and its outcome (not the
        caller's) decides whether the delivery is settled: the prefetch window never leaks a slot.
        """
        operation = self.start_settle(delivery, requeue)
        if operation is not None:
            await asyncio.shield(operation)

    def start_settle(self, delivery: RedisDelivery, requeue: bool | None) -> asyncio.Future[Any] | None:
        """`settle` started now: the future of the server call, or None when the delivery is (being) settled."""
        self._host.check_open()
        if not delivery.begin():
            return None
        operation: asyncio.Future[Any]
        if requeue:
            payload = redis_envelope.mark_redelivered(delivery.envelope)
            operation = asyncio.ensure_future(
                self._ops.move_back(
                    delivery.delivery_tag, payload, [delivery.list_key], front=False, count=delivery.delivery_count
                )
            )
        else:
            try:
                operation = self._host.acks.enqueue((delivery.delivery_tag, delivery.delivery_count))
            except BaseException:
                delivery.end(False)
                raise
        operation.add_done_callback(functools.partial(self._settled, delivery))
        return operation

    def _settled(self, delivery: RedisDelivery, operation: asyncio.Future[Any]) -> None:
        done = not operation.cancelled() and operation.exception() is None
        delivery.end(done)
        if done:
            self._forget(delivery)

    def _forget(self, delivery: RedisDelivery) -> None:
        if self._in_flight.get(delivery.delivery_tag) is delivery:
            del self._in_flight[delivery.delivery_tag]
        # Credit freed. Wake the fetching loop only once a fetch would follow (see __anext__): at a few thousand
        # acks a second, a wake-up per ack that finds too little room is a measurable share of the CPU. The
        # first free slot wakes it too: it then waits a bounded time for the floor (held deliveries may never
        # let the credit reach it).
        credit = self._credit()
        if self._cancelled or credit == 1 or credit >= self._batch_floor() or delivery.suspect:
            self._signal.set()
        if self._cancelled and not self._in_flight:
            self._finish()

    def _finish(self) -> None:
        """Cancelled, nothing in flight: stop renewing now (not after up to ``renew_interval``), tell the host."""
        if self._renewer is not None:
            self._renewer.cancel()
        self._host.consumer_finished(self)

    def _batch_floor(self) -> int:
        window = min(self._settings.fetch_limit, self._prefetch) if self._prefetch else self._settings.fetch_limit
        return max(1, window // 2)

    def _credit(self) -> int:
        limit = self._settings.fetch_limit
        if not self._prefetch:
            return limit
        return min(limit, self._prefetch - len(self._in_flight))

    # -- fetching ----------------------------------------------------------------------------------------------

    async def _fetch(self, credit: int) -> bool:
        """Move up to ``credit`` messages into the ready buffer; True when any list had a message.

        When every list is empty the script opened the claim: the consumer is armed.
        """
        retries = self._ops.fetch_retries
        try:
            outcome = await self._idle.fetch(self._queues, credit)
        except TransportError:
            self._unaccounted = True  # the script may have run
            raise
        if self._ops.fetch_retries != retries:
            self._unaccounted = True  # sent twice: the first may have run, its reply lost
        return await self.take(outcome)

    async def take(self, outcome: Outcome) -> bool:
        """Put what a fetch or armed fetch delivered in the ready buffer; True when it moved any message."""
        self._floor_since = None
        deliveries, unreadable = unpack(outcome, self, self._ops)
        for delivery in deliveries:
            self._in_flight[delivery.delivery_tag] = delivery
            self._ready.append(delivery)
            if delivery.suspect:
                self._probation = (delivery, asyncio.get_running_loop().time() + _PROBATION)
        if outcome.delivered:
            self._signal.set()
        for item, exc in unreadable:  # after the readable ones are safe in the ready buffer
            await bury(self._ops, item, exc)
        return bool(outcome.delivered or outcome.dead)

    async def _end_waits(self) -> None:
        """Stop the armed waits for good, without stranding what an armed fetch took (it reaches the ready buffer)."""
        if self._fetching is not None:  # let a fetch on the wire land: its messages and a claim it opens are known
            await asyncio.wait([self._fetching], timeout=5.0)
        await self._idle.close()

    # -- renewal and shutdown ----------------------------------------------------------------------------------

    async def _renew(self) -> None:
        """Keep this consumer's in-flight deliveries from expiring while it lives."""
        while not (self._cancelled and not self._in_flight):
            raise_if_cancelled()
            await asyncio.sleep(self._settings.renew_interval)
            tags = list(self._in_flight)
            if not tags:
                continue
            try:
                await self._ops.renew(tags)
            except TransportError as exc:
                log.warning("could not renew %d in-flight deliveries: %s", len(tags), exc)

    async def _restore(self, deliveries: Sequence[RedisDelivery]) -> None:
        """Put unsettled deliveries back at the front of their lists now (kombu restores on close too)."""
        for delivery in deliveries:
            if not delivery.begin():
                continue
            done = False
            try:
                payload = redis_envelope.mark_redelivered(delivery.envelope)
                await self._ops.move_back(
                    delivery.delivery_tag, payload, [delivery.list_key], front=True, count=delivery.delivery_count
                )
                done = True
            except TransportError as exc:
                log.warning(
                    "could not restore delivery %s now (visibility timeout will): %s", delivery.delivery_tag, exc
                )
                return
            finally:
                delivery.end(done)
                if done:
                    self._forget(delivery)

    async def close(self) -> None:
        """Stop everything and restore every unsettled delivery (the transport is closing)."""
        self._cancelled = True
        self._signal.set()
        if self._renewer is not None:
            self._renewer.cancel()
        await self._end_waits()
        await self._restore(list(self._in_flight.values()))
        self._ready.clear()
