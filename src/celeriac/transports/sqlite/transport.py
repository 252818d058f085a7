"""The embedded default broker: messages are rows of one SQLite file, leased to one consumer at a time.

Several worker and producer processes on one machine share the file (WAL mode). How the promises of
`celeriac.transports.base` are kept:

* ``publish`` inserts a row; concurrent publishes commit in one transaction (group commit) and each returns
  only after that commit. ``not_before`` keeps the row invisible until then (``has_delayed_delivery``).
* ``consume`` leases up to (prefetch - un-acked) ready rows in one write transaction (``lease_owner``,
  ``lease_until`` = now + visibility_timeout). The transport renews the leases of its un-acked deliveries
  at least every visibility_timeout/3, so only the leases of a dead process run out; such a row is ready
  again and is delivered with ``redelivered=True``.
* ``ack`` deletes the row; concurrent acks commit in one ``DELETE`` (group commit). ``reject(requeue=True)``
  clears the lease; ``reject()`` moves the row to ``dead_letters`` with its reason, and so does a lease past
  ``max_deliveries`` (<= 0: no limit) instead of delivering the row again.
* Order: queues in the order given, then **higher priority first** (AMQP's direction; Redis serves 0 first),
  then publish order.
* Routing: the default exchange ``""`` sends to the queue named by the routing key; a named exchange to the
  queues of its ``bindings`` rows with that routing key (``declare`` binds a queue to its own name's exchange),
  and nowhere when there are none (as kombu's direct exchanges).
* Waiting costs no CPU worth the name: a process that commits pokes the waiting ones (`celeriac._sqlite.wake`),
  and ``PRAGMA data_version``, polled with a backoff from 1 ms up to ``polling_interval`` while someone waits,
  catches a commit no poke announced; a commit made through this transport wakes its own consumers at once.
* ``blocking_publisher`` inserts from the calling thread on a connection of its own (`direct`).
* Broadcast: rows of ``broadcasts`` read by id > the last one seen (subscribed names with ``*``/``#`` match
  as GLOB patterns); rows older than ``broadcast_ttl`` go.
* ``close`` gives the leases of un-acked deliveries back at once (as AMQP does when a channel closes).
* A lease names its owner's host, pid and process start time: at connect and on the renewal cadence, the leases
  of this host's processes that are gone (the pid is dead, or reused by a younger process) are given back at once,
  not after the visibility timeout.
* A row that cannot be a message (a column of the wrong type, text that is not UTF-8, a ``lease_until`` past
  year 9999 or not a number) is moved to ``dead_letters`` with the reason, and the consumer goes on.
* The file deleted or replaced under a running process: within a second (`FILE_CHECK_EVERY`) every operation
  raises `ConnectionLost` naming the path, once logged as an error; the stale WAL files of the lost file are
  removed, and a reconnect opens (or creates) the file now at the path.

Each connection belongs to one thread (`celeriac._sqlite.thread.SQLiteThread`); coroutines hand it functions
to run. That plumbing (thread, change watcher, group commit, URL and error handling) lives in
`celeriac._sqlite`, shared with the SQLite result backend; the functions run on the thread are in `ops`, the
consumer in `consumer`, the broadcast subscription in `broadcast` (each takes this transport through a small host
protocol of its own, so they never import this module).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Sequence

from celeriac._sqlite.commit import GroupCommit
from celeriac._sqlite.config import database_path, option_number
from celeriac._sqlite.errors import ErrorMap
from celeriac._sqlite.thread import SQLiteThread
from celeriac._sqlite.watch import ChangeWatcher
from celeriac.errors import CeleriacError, ConnectionLost, TransportClosed, TransportError
from celeriac.protocol.message import Message
from celeriac.protocol.serializers import json_dumps
from celeriac.transports.base import Transport, TransportOptions
from celeriac.transports.sqlite import ops
from celeriac.transports.sqlite.broadcast import SQLiteSubscription
from celeriac.transports.sqlite.consumer import SQLiteConsumer, SQLiteDelivery
from celeriac.transports.sqlite.direct import SQLiteBlockingPublisher

log = logging.getLogger("celeriac.transports.sqlite")

DEAD_LETTER_TTL = 7 * 86400.0  # dead letters are kept a week by default, for someone to look at
MAINTENANCE_EVERY = 10.0  # pruning period (and the longest gap between two lease renewals)
FILE_CHECK_EVERY = 1.0  # how often the broker file's inode is compared with the one opened


class SQLiteTransport(Transport):
    """The embedded broker on the SQLite file a ``sqlite://`` URL names (see the module docstring).

    ``options.extra`` keys: ``busy_timeout`` (s a write waits for the lock, default 5), ``lease_batch``
    (most rows leased per transaction, default 256), ``broadcast_ttl`` (s broadcasts are kept, default 60),
    ``dead_letter_ttl`` (s dead letters are kept, default 7 days; None keeps them).
    """

    has_broadcast = True
    has_delayed_delivery = True

    def __init__(self, url: str, options: TransportOptions) -> None:
        self.url = url
        self.options = options
        self.path = database_path(url)
        extra = options.extra
        busy_timeout = option_number(extra, "busy_timeout", 5.0)
        self.lease_batch = max(1, int(option_number(extra, "lease_batch", 256)))
        self._broadcast_ttl = option_number(extra, "broadcast_ttl", 60.0)
        keep_dead_forever = "dead_letter_ttl" in extra and extra["dead_letter_ttl"] is None
        dead_ttl = option_number(extra, "dead_letter_ttl", DEAD_LETTER_TTL) if not keep_dead_forever else None
        self._dead_letter_ttl = dead_ttl
        where = f"sqlite broker {self.path}"
        errors = ErrorMap(where, ConnectionLost, TransportError, TransportClosed, busy_timeout)
        # A deleted or replaced broker file must not leave a deaf worker: the thread checks the file's inode at
        # most every FILE_CHECK_EVERY s (the change watch polls at least that often while anyone waits).
        self.thread = SQLiteThread(self.path, "celeriac-sqlite-broker", errors, check_file_every=FILE_CHECK_EVERY)
        self.watcher = ChangeWatcher(self.thread, options.polling_interval)
        self._publisher = GroupCommit(self.thread, ops.publish_batch)
        self._acker = GroupCommit(self.thread, ops.ack_batch)
        self._broadcaster = GroupCommit(self.thread, ops.fanout_batch)
        self._consumers: set[SQLiteConsumer] = set()
        self._publishers: weakref.WeakSet[SQLiteBlockingPublisher] = weakref.WeakSet()
        self._subscriptions: set[SQLiteSubscription] = set()
        self._maintenance: asyncio.Task[None] | None = None
        self._opened = False
        self._closed = False

    @property
    def is_open(self) -> bool:
        return self._opened and not self._closed

    async def connect(self) -> None:
        """Open (and if needed create) the database file. Raises `ConnectionLost` when that fails."""
        if self._closed:
            raise TransportClosed(f"{self.url} is closed")
        if self._opened:
            return
        await self.thread.start(ops.setup)
        self._opened = True
        try:
            await self._reclaim()
        except ConnectionLost:
            await self.close()
            raise
        except TransportError as exc:  # upkeep only: the next maintenance pass tries again
            log.warning("%s: reclaiming the leases of gone processes failed, will retry: %s", self.url, exc)
        self._maintenance = asyncio.create_task(self._maintain())

    async def close(self) -> None:
        """End consumers and subscriptions, give un-acked leases back, close the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for publisher in list(self._publishers):
            publisher.close()
        listeners = [s.listener for s in self._subscriptions if s.listener is not None]
        for subscription in list(self._subscriptions):
            subscription.end()
        self._subscriptions.clear()
        if listeners:  # while the connection is still open: a broadcast must not count them any more
            with contextlib.suppress(CeleriacError):
                await self.thread.run(ops.drop_listeners, listeners)
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        try:
            if self._opened:
                for consumer in list(self._consumers):
                    await consumer.wait_fetched()
                for batcher in (self._publisher, self._acker, self._broadcaster):
                    await batcher.drain()
                releases = [consumer.shutdown() for consumer in self._consumers]
                if releases:
                    await self.thread.run(ops.release, releases)
        except CeleriacError as exc:
            log.warning("%s: leases not given back on close (they come back when they expire): %s", self.url, exc)
        finally:
            self._consumers.clear()
            await self.watcher.close()
            await self.thread.stop()

    async def declare(self, queue: str) -> None:
        """Bind ``queue`` to the exchange of its own name (a queue itself is just the set of rows naming it)."""
        await self.bind(queue, queue, queue)

    async def bind(self, queue: str, exchange: str, routing_key: str) -> None:
        """Add the ``bindings`` row: messages to ``exchange`` with ``routing_key`` also go to ``queue``."""
        self._check_open()
        await self.thread.run(ops.bind, exchange, routing_key, queue)

    async def delete(self, queue: str) -> None:
        """Delete every binding of ``queue`` and every row naming it (leased ones too: their acks do nothing)."""
        self._check_open()
        await self.thread.run(ops.delete_queue, queue)

    async def publish(
        self,
        message: Message,
        routing_key: str,
        exchange: str = "",
        *,
        not_before: float | None = None,
    ) -> None:
        """Insert a row for each queue ``exchange`` routes ``routing_key`` to; returns after the commit (shared
        with concurrent ones). A named exchange with no matching binding drops the message (logged).

        Raises:
            TypeError: headers or properties hold a value kombu JSON cannot represent.
        """
        self._check_open()
        if not exchange:
            await self._insert_message(message, routing_key, exchange, routing_key, not_before)
            return
        queues = await self.thread.run(ops.route, exchange, routing_key)
        if not queues:
            log.warning("message to exchange %r with routing key %r dropped: no queue is bound", exchange, routing_key)
        for queue_name in queues:
            await self._insert_message(message, queue_name, exchange, routing_key, not_before)

    async def _insert_message(
        self, message: Message, queue_name: str, exchange: str, routing_key: str, not_before: float | None
    ) -> None:
        row = ops.message_row(message, queue_name, exchange, routing_key, not_before)
        await self._publisher.submit(row)
        self.watcher.notify()

    def blocking_publisher(self) -> SQLiteBlockingPublisher:
        """A publisher for the calling thread, on a connection of its own (`celeriac.transports.sqlite.direct`)."""
        self._check_open()
        publisher = SQLiteBlockingPublisher(self.path, self.thread.errors, FILE_CHECK_EVERY)
        self._publishers.add(publisher)
        return publisher

    def consume(self, queues: Sequence[str], prefetch: int) -> SQLiteConsumer:
        self._check_open()
        consumer = SQLiteConsumer(self, queues, prefetch)
        self._consumers.add(consumer)
        return consumer

    async def fanout_counted(self, channel: str, message: Message) -> int:
        """`fanout`, and how many open subscriptions (their rows in ``listeners``) it reaches."""
        await self.fanout(channel, message)
        return await self.thread.run(ops.count_listeners, channel)

    async def fanout(self, channel: str, message: Message) -> None:
        self._check_open()
        row = (
            channel,
            bytes(message.body),
            message.content_type,
            message.content_encoding,
            json_dumps(dict(message.headers)),
            json_dumps(dict(message.properties)),
            time.time(),
        )
        await self._broadcaster.submit(row)
        self.watcher.notify()

    async def subscribe(self, channels: Sequence[str], name: str | None = None) -> SQLiteSubscription:
        self._check_open()
        after = await self.thread.run(ops.scalar, ops.SQL["last_broadcast"], {})
        subscription = SQLiteSubscription(self, channels, after)
        await subscription.register()
        self._subscriptions.add(subscription)
        return subscription

    async def purge(self, queue: str) -> int:
        """Delete the rows of ``queue`` no consumer holds, delayed ones included; return how many."""
        self._check_open()
        return await self.thread.run(ops.purge, queue)

    async def size(self, queue: str) -> int:
        """Rows of ``queue`` deliverable now (not leased, not delayed)."""
        self._check_open()
        return await self.thread.run(ops.scalar, ops.SQL["size"], {"queue": queue, "now": time.time()})

    # -- for SQLiteConsumer and SQLiteSubscription -------------------------------------------------------

    async def ack(self, owner: str, row_id: int) -> None:
        await self.ack_soon(owner, row_id)

    def ack_soon(self, owner: str, row_id: int) -> asyncio.Future[None]:
        """Queue the ack of a leased row; the future completes with its commit."""
        self._check_open()
        return self._acker.enqueue((owner, row_id))

    async def release(self, releases: list[tuple[str, list[int], list[int]]]) -> None:
        self._check_open()
        await self.thread.run(ops.release, releases)
        self.watcher.notify()

    async def dead_letter(self, owner: str, row_id: int, reason: str) -> None:
        self._check_open()
        await self.thread.run(ops.dead_letter, owner, row_id, reason)

    def forget_consumer(self, consumer: SQLiteConsumer) -> None:
        self._consumers.discard(consumer)

    def forget_subscription(self, subscription: SQLiteSubscription) -> None:
        self._subscriptions.discard(subscription)

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed(f"{self.url} is closed")
        if not self._opened:
            raise TransportError(f"{self.url} is not connected: call connect() first")

    async def _reclaim(self) -> None:
        """Give back at once the leases of this host's processes that are gone (a killed worker's would
        otherwise wait out the visibility timeout), and dead-letter rows held for ever by a malformed
        ``lease_until``. Runs at connect and on the lease-renewal cadence."""
        gone, bad = await self.thread.run(ops.reclaim)
        for owner in gone:
            log.warning("%s: leases of %s given back: that process is gone", self.url, owner)
        for row_id, reason in bad:
            log.error("%s: message %d dead-lettered: %s", self.url, row_id, reason)
        if gone:
            self.watcher.notify()

    async def _maintain(self) -> None:
        """Renew the leases of live deliveries; prune old broadcasts and dead letters."""
        period = min(self.options.visibility_timeout / 3, MAINTENANCE_EVERY)
        next_prune = 0.0
        while True:
            await asyncio.sleep(period)
            try:
                leases = [(c.owner, c.held_ids) for c in self._consumers if c.held_ids]
                if leases:
                    await self.thread.run(ops.renew, leases, time.time() + self.options.visibility_timeout)
                await self._reclaim()
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + MAINTENANCE_EVERY
                    now = time.time()
                    dead_before = None if self._dead_letter_ttl is None else now - self._dead_letter_ttl
                    await self.thread.run(ops.prune, now - self._broadcast_ttl, dead_before)
            except TransportClosed:
                return
            except TransportError as exc:
                log.warning("%s: lease renewal or pruning failed, will retry: %s", self.url, exc)


__all__ = ["SQLiteConsumer", "SQLiteDelivery", "SQLiteSubscription", "SQLiteTransport", "database_path"]
