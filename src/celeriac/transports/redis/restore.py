"""Bring back deliveries whose consumer died: kombu's visibility-timeout restore (celery-wire.md §2.5).

Every ``restore_interval`` a live consumer's transport takes the ``unacked_mutex`` lock (so one process at a
time does this, celeriac or kombu), lists the ``unacked_index`` entries older than ``visibility_timeout``,
and for each: routes it again with its saved exchange and routing key (bindings for named exchanges, as kombu
does), marks it ``redelivered`` and RPUSHes it to the front of the queue. Live celeriac consumers renew their
entries, so only dead consumers' deliveries (and kombu consumers' slow ones) ever look expired.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from celeriac._redis.compat import raise_if_cancelled
from celeriac.errors import DecodeError, TransportError
from celeriac.transports.redis import envelope as redis_envelope
from celeriac.transports.redis.ops import RedisOps

log = logging.getLogger("celeriac.transports.redis")


class Restorer:
    """Periodic restore of expired deliveries for one transport."""

    def __init__(self, ops: RedisOps) -> None:
        self._ops = ops
        self._settings = ops.settings

    async def run(self) -> None:
        """Sweep now and then every ``restore_interval`` until cancelled; errors are logged, not raised."""
        while True:
            raise_if_cancelled()
            try:
                await self.sweep()
            except TransportError as exc:
                log.warning("restoring expired deliveries failed: %s", exc)
            raise_if_cancelled()
            await asyncio.sleep(self._settings.restore_interval)

    async def sweep(self) -> int:
        """One pass under the lock; returns how many deliveries were restored (0 when the lock is held)."""
        token = str(uuid.uuid4())
        if not await self._ops.lock(token):
            return 0
        try:
            cutoff = time.time() - self._settings.visibility_timeout
            restored = 0
            for tag, value in await self._ops.expired(cutoff, self._settings.restore_limit):
                if await self._restore_one(tag, value, cutoff):
                    restored += 1
            if restored:
                log.info("restored %d deliveries not acked within %gs", restored, self._settings.visibility_timeout)
            return restored
        finally:
            await self._ops.unlock(token)

    async def _restore_one(self, tag: str, value: str | None, cutoff: float) -> bool:
        if value is None:  # an index entry without its hash entry: let the script drop it once expired
            await self._ops.move_back(tag, "", [], front=True, cutoff=cutoff)
            return False
        try:
            envelope, exchange, routing_key = redis_envelope.unacked_entry(value)
        except DecodeError as exc:
            log.error("cannot restore unacked entry %s: %s", tag, exc.reason)
            return False
        queues = await self._ops.route(exchange, routing_key)
        priority = envelope.message.priority
        lists = [self._ops.keys.queue(queue, priority) for queue in queues]
        payload = redis_envelope.mark_redelivered(envelope)
        moved = await self._ops.move_back(tag, payload, lists, front=True, expected=value, cutoff=cutoff)
        if moved == 0:
            log.warning("expired delivery %s dropped: exchange %r has no route for %r", tag, exchange, routing_key)
        return moved > 0
