"""Bring back deliveries whose consumer died: kombu's visibility-timeout restore (celery-wire.md §2.5).

Every ``restore_interval`` a live consumer's transport takes the ``unacked_mutex`` lock (so one process at a
time does this, celeriac or kombu), lists the ``unacked_index`` entries older than ``visibility_timeout``,
and for each: routes it again with its saved exchange and routing key (bindings for named exchanges, as kombu
does), marks it ``redelivered`` and RPUSHes it to the front of the queue. Live celeriac consumers renew their
entries, so only dead consumers' deliveries (and kombu consumers' slow ones) ever look expired. A restored
message is marked a *suspect* (its consumer may have died of it): the next fetch takes it alone (`scripts.FETCH`).

No single entry can stop the restore: an entry celeriac cannot read or route (bytes that are not UTF-8, a bad
shape, a priority that is not a finite number, anything that raises) is moved to a dead-letter list with its
reason (`scripts.BURY`) and the sweep goes on. The lock lives ``mutex_expire`` seconds and is renewed while a
sweep runs, so a holder that dies blocks the others for at most that long.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

from celeriac._redis.compat import raise_if_cancelled
from celeriac.errors import ConnectionLost, DecodeError, TransportError
from celeriac.transports.redis import envelope as redis_envelope
from celeriac.transports.redis.ops import RedisOps

log = logging.getLogger("celeriac.transports.redis")

UNROUTABLE_QUEUE = "celeriac.unacked"
"""The dead-letter list (``<this>.dead``) of unacked entries whose queue cannot be read from them."""


def dead_queue(value: str) -> str:
    """The queue whose dead-letter list takes the unreadable unacked entry ``value``: its routing key if readable."""
    try:
        entry = json.loads(value)
    except ValueError:
        return UNROUTABLE_QUEUE
    if isinstance(entry, list) and len(entry) == 3 and isinstance(entry[2], str) and entry[2]:
        return entry[2]
    return UNROUTABLE_QUEUE


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
            except Exception:  # a bug must not end crash recovery for good: log it and sweep again later
                log.exception("restoring expired deliveries failed")
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
            renewed = time.monotonic()
            for tag, value in await self._ops.expired(cutoff, self._settings.restore_limit):
                if time.monotonic() - renewed > self._settings.mutex_expire / 3:
                    if not await self._ops.lock(token, renew=True):
                        log.warning("restore lock lost mid-sweep; another process goes on")
                        break
                    renewed = time.monotonic()
                if await restore_entry(self._ops, tag, value, cutoff=cutoff):
                    restored += 1
            if restored:
                log.info("restored %d deliveries not acked within %gs", restored, self._settings.visibility_timeout)
            return restored
        finally:
            await self._ops.unlock(token)


async def restore_entry(
    ops: RedisOps, tag: str, value: str | None, *, cutoff: float | None = None, count: int | None = None
) -> bool:
    """Put the unacked entry ``tag`` (its hash value ``value``) back at the front of its queue, if it is still
    that value (and not renewed after ``cutoff``, and still at delivery ``count``, when given); True if moved.

    An entry that cannot be restored is dead-lettered with its reason, never raised (`ConnectionLost` is).
    """
    if value is None:  # an index entry without its hash entry: let the script drop it once expired
        if cutoff is not None:
            await ops.move_back(tag, "", [], front=True, cutoff=cutoff)
        return False
    try:
        return await _move(ops, tag, value, cutoff, count)
    except ConnectionLost:
        raise
    except (DecodeError, TransportError, ValueError, TypeError, OverflowError, UnicodeError) as exc:
        reason = exc.reason if isinstance(exc, DecodeError) else f"{type(exc).__name__}: {exc}"
    queue = dead_queue(value)
    raw = value.encode("utf-8", "surrogateescape")  # the bytes Redis holds, whatever they are
    if await ops.bury(tag, raw, queue, f"cannot restore: {reason}"):
        log.error("unacked entry %s cannot be restored; moved to %r: %s", tag, ops.keys.dead_letter(queue), reason)
    return False


async def _move(ops: RedisOps, tag: str, value: str, cutoff: float | None, count: int | None) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept as surrogates by `fetch.text`
        raise DecodeError("unacked entry is not valid UTF-8") from None
    envelope, exchange, routing_key = redis_envelope.unacked_entry(value)
    queues = await ops.route(exchange, routing_key)
    priority = envelope.message.priority
    lists = [ops.keys.queue(queue, priority) for queue in queues]
    payload = redis_envelope.mark_redelivered(envelope)
    # Restored after its visibility timeout: its consumer died holding it, maybe of it. Delivered alone from now.
    suspect = cutoff is not None
    moved = await ops.move_back(
        tag, payload, lists, front=True, count=count, expected=value, cutoff=cutoff, suspect=suspect
    )
    if moved == 0:
        log.warning("unacked delivery %s dropped: exchange %r has no route for %r", tag, exchange, routing_key)
    return moved > 0
