"""Re-queue at once what a closing Redis transport still owns: deliveries it could not restore, lost fetch replies.

The fetch script records each message it moves into ``unacked`` in the transport's ``owned`` hash (tag ->
delivery count) in the same step; an ack or a requeue removes it. When the transport closes (a warm stop, or the
worker reconnecting after the broker went away), whatever is still there is a delivery its consumers could not
put back (Redis was unreachable at that moment) or one whose fetch reply never reached it: both go back to the
front of their queues now, routed like a visibility-timeout restore, and only while the entry is unchanged
(same value, same delivery count), so a delivery restored and fetched elsewhere meanwhile is left alone.

When Redis cannot be reached at close, `recover_later` keeps trying in the background (backing off to 2 s) until
it answers, for at most the visibility timeout; after that the restore of any live consumer has them anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Container

from celeriac.errors import TransportError
from celeriac.transports.redis.ops import RedisOps
from celeriac.transports.redis.restore import restore_entry

log = logging.getLogger("celeriac.transports.redis")

_PENDING: set[asyncio.Task[None]] = set()  # background recoveries: a strong reference until each ends


async def requeue_owned(ops: RedisOps) -> int:
    """Re-queue every unsettled delivery the transport of ``ops`` owns, then forget them; returns how many moved.

    Raises:
        TransportError: Redis could not be reached (nothing forgotten: call again).
    """
    moved = 0
    for tag, count, value in await ops.owned_entries():
        if await restore_entry(ops, tag, value, count=count):
            moved += 1
    await ops.forget_owned()
    if moved:
        log.info("re-queued %d deliveries this transport held or had fetched without hearing back", moved)
    return moved


async def requeue_unknown(ops: RedisOps, known: Container[str]) -> int:
    """Re-queue the owned deliveries whose tags are not in ``known`` (what a consumer holds): the messages of
    fetches whose reply was lost. Only for a transport's sole consumer, with no fetch of its on the wire.

    Raises:
        TransportError: Redis could not be reached.
    """
    moved = 0
    gone = []
    for tag, count, value in await ops.owned_entries():
        if tag in known:
            continue
        if value is None:
            gone.append(tag)
        elif await restore_entry(ops, tag, value, count=count):
            moved += 1
    await ops.disown(gone)
    if moved:
        log.warning("re-queued %d deliveries whose fetch reply was lost", moved)
    return moved


def recover_later(ops: RedisOps, deadline: float, done: Callable[[], Awaitable[None]]) -> None:
    """Retry `requeue_owned` in the background until it succeeds or the monotonic ``deadline``; then ``done()``."""

    async def retry() -> None:
        delay = 0.1
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(delay)
                try:
                    await requeue_owned(ops)
                    return
                except TransportError as exc:
                    log.debug("re-queueing owned deliveries: %s; trying again", exc)
                delay = min(delay * 2, 2.0)
            log.warning("Redis unreachable since close: owned deliveries return after the visibility timeout")
        finally:
            await done()

    task = asyncio.create_task(retry(), name="celeriac-redis-recover")
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)
