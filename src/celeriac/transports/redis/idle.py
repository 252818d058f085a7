"""An idle consumer's blocking waits, each with a fetch armed behind it, and the claim that bounds them.

The consumer's own fetch (`redis_lua.FETCH`, mode ``F``) *opens* the claim when it finds every list empty:
claim ``n`` for the free prefetch window. Then one watcher per list blocks on a `redis_wait.Waiter`, its armed
fetch pipelined behind the BLMOVE. The first armed fetch to find a message takes up to the window and marks
the claim taken; the others find it taken and take nothing. Claim ``n`` is *over* once the consumer has heard
the reply of the armed fetch that took it, closed it (`redis_lua.CLOSE_CLAIM`), or learnt that it was lost;
until then the consumer is `ArmedWait.armed` and does not fetch by itself, so nothing it fetches overlaps
what an armed fetch takes.

The claim opens for a *generation* (the consumer's version, bumped when its queues or prefetch change): an
armed fetch sent for another generation takes nothing. That is what makes cancelling a watcher safe once the
claim was opened for a newer generation, or closed: its armed fetch can no longer take anything.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence

from celeriac._redis.compat import raise_if_cancelled
from celeriac.errors import TransportError
from celeriac.transports.redis.ops import Outcome, RedisOps
from celeriac.transports.redis.wait import Waiter

log = logging.getLogger("celeriac.transports.redis")

LOST = "a fetch reply was lost with its connection; its messages return after the visibility timeout"


class ArmedWait:
    """The armed waits of one consumer.

    Args:
        ops: the server calls.
        take: puts what an armed fetch delivered in the consumer's ready buffer; everything it does before
            its first ``await`` runs at once (so no reply is dropped by a later cancel).
        wake: wakes the consumer: a claim is over, or a watcher failed (`error`).
    """

    def __init__(self, ops: RedisOps, take: Callable[[Outcome], Awaitable[object]], wake: Callable[[], None]) -> None:
        self._ops = ops
        self._take = take
        self._wake = wake
        self.key = ops.keys.claim(uuid.uuid4().hex)
        self.error: TransportError | None = None  # a watcher's failure, for the consumer to raise
        self._written = False  # the claim key may exist: delete it at the end
        self._version = 0
        self._open_version = 0  # the generation the last claim was opened for
        self._opens = 0  # the id of the last claim opened (they count up from 1)
        self._over = 0  # the id of the last claim known to be over
        self._order: list[tuple[str, str]] = []  # the lists the last claim was opened for
        self._armable = asyncio.Event()  # set (and replaced) each time a claim opens
        self._progress = asyncio.Event()  # set (and replaced) each time a request ends: `disarm` waits on it
        self._requests: dict[str, str] = {}  # armed fetches on the wire: request id -> list key
        self._request_ids = itertools.count(1)
        self._watchers: dict[str, asyncio.Task[None]] = {}

    @property
    def armed(self) -> bool:
        """A claim is open, or taken but not yet heard of: the consumer must not fetch by itself."""
        return self._opens > self._over

    @property
    def stale(self) -> bool:
        """The open claim is for an older generation: `disarm` before fetching again."""
        return self._open_version != self._version

    def changed(self) -> None:
        """The queues or the prefetch changed (or the link failed): an open claim is out of date."""
        self._version += 1

    def next_claim(self) -> tuple[int, int]:
        """``(generation, claim id)`` for the consumer's next fetch, which opens it if every list is empty."""
        self._written = True
        return self._version, self._opens + 1

    def opened(self, generation: int, claim_id: int, order: Sequence[tuple[str, str]], watch: bool) -> None:
        """The consumer's fetch opened claim ``claim_id`` over the lists of ``order``; ``watch``: arm on them."""
        # An armed fetch may have taken this claim already (its reply heard first): then it is over already.
        self._opens = claim_id
        self._open_version = generation
        self._order = list(order)
        if self.armed and watch:
            self.watch()
            self._armable.set()
            self._armable = asyncio.Event()

    def watch(self) -> None:
        """One watcher per list of the open claim. Others are cancelled: their armed fetches are for an older
        generation, which the open claim refuses, so cancelling them strands nothing."""
        wanted = {key for _, key in self._order}
        for key in wanted - self._watchers.keys():
            self._watchers[key] = asyncio.create_task(self._watch(key), name=f"celeriac-redis-watch {key!r}")
        for key in self._watchers.keys() - wanted:
            self._watchers.pop(key).cancel()

    async def disarm(self, consumed: set[str]) -> None:
        """Close the open claim; return once no armed fetch can take messages and the reply of any that did
        was taken (or is known to be lost). Then stop the watchers of lists not in ``consumed``.

        Raises:
            ConnectionLost: Redis cannot be reached (still armed: call again).
        """
        closing = self._opens
        before = await self._ops.close_claim(self.key)
        if before is not None and before.startswith("claimed "):
            rid = before.removeprefix("claimed ")
            while self._over < closing and rid in self._requests:
                await self._progress.wait()
            if self._over < closing:
                log.warning(LOST)
        self._over = max(self._over, closing)
        for key in self._watchers.keys() - consumed:
            self._watchers.pop(key).cancel()

    async def end(self) -> None:
        """The consumer ends: close and delete the claim, then stop every watcher (nothing stranded)."""
        try:
            if self.armed:
                await self.disarm(set())
            if self._written:
                await self._ops.delete_claim(self.key)
                self._written = False
        except TransportError as exc:
            log.warning("could not close consumer claim %s (it expires by itself): %s", self.key, exc)
        finally:
            for task in self._watchers.values():
                task.cancel()
            self._watchers.clear()

    async def _watch(self, key: str) -> None:
        """Block on ``key`` with an armed fetch behind, once per open claim (again while it stays open)."""
        waiter = Waiter(self._ops)
        done = 0  # the claims this watcher is finished with
        try:
            while True:
                raise_if_cancelled()
                while not (self.armed and not self.stale and self._opens > done):
                    await self._armable.wait()
                opens, generation, order = self._opens, self._open_version, self._order
                rid = str(next(self._request_ids))
                self._requests[rid] = key
                try:
                    outcome = await waiter.claim_when_nonempty(key, order, self.key, generation, rid)
                finally:
                    del self._requests[rid]
                    self._progress.set()
                    self._progress = asyncio.Event()
                # Found nothing and the claim is still open: block again at once. Else wait for the next claim.
                done = opens - 1 if outcome.state == "open" else opens
                self._heard(outcome, rid, opens)
                await self._take(outcome)
        except TransportError as exc:
            self.error = exc
            self._wake()
        finally:
            await waiter.close()
            if self._watchers.get(key) is asyncio.current_task():
                del self._watchers[key]

    def _heard(self, outcome: Outcome, rid: str, opens: int) -> None:
        """Learn from an armed fetch's reply whether a claim is over."""
        if outcome.state == "claimed" and outcome.detail is not None:
            self._over = max(self._over, int(outcome.detail))
        elif outcome.state == "stale" and outcome.detail == f"claimed {rid}":
            # A retry after a broken connection found its own first attempt's claim: that reply is lost.
            log.warning(LOST)
            self._over = max(self._over, opens)
        elif outcome.state == "stale" and outcome.detail is None and opens == self._opens:
            self._over = opens  # the claim expired (no armed fetch renewed it for claim_ttl): open one again
        else:
            return
        self._wake()
