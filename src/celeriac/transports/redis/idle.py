"""An idle consumer's armed wait: blocking waits with a fetch armed behind each, and the claim that bounds them.

The consumer sees two methods: `ArmedWait.wait` (armed? then wait for the wake-up, not fetching) and
`ArmedWait.fetch` (its own fetch, which arms the waits when it finds every list empty); `ArmedWait.close` ends them.

The consumer's own fetch (`scripts.FETCH`, mode ``F``) *opens* the claim when it finds every list empty:
claim ``n`` for the free prefetch window. Then one watcher per list blocks on a `wait.Waiter`, its armed
fetch pipelined behind the BLMOVE. The first armed fetch to find a message takes up to the window and marks
the claim taken; the others find it taken and take nothing. Claim ``n`` is *over* once the consumer has heard
the reply of the armed fetch that took it, closed it (`scripts.CLOSE_CLAIM`), or learnt that it was lost;
until then the consumer is armed and does not fetch by itself, so nothing it fetches overlaps what an armed
fetch takes.

The claim opens for a *generation* (the consumer's version, bumped when its queues or prefetch change, and
each time a watcher failed): an armed fetch sent for another generation takes nothing. That is what makes
cancelling a watcher safe once the claim was opened for a newer generation, or closed: its armed fetch can no
longer take anything.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Sequence
from typing import Protocol

from celeriac._redis.compat import raise_if_cancelled
from celeriac.errors import TransportError
from celeriac.transports.redis.fetch import Outcome
from celeriac.transports.redis.ops import RedisOps
from celeriac.transports.redis.wait import Waiter

log = logging.getLogger("celeriac.transports.redis")

LOST = "a fetch reply was lost with its connection; its messages are re-queued once the consumer can tell them"


class WaitHost(Protocol):
    """What the armed waits need from their consumer."""

    @property
    def version(self) -> int:
        """Bumped each time the consumer's queues or prefetch change: an open claim is then out of date."""

    @property
    def stopping(self) -> bool:
        """The consumer is cancelled or closing: arm nothing more."""

    async def take(self, outcome: Outcome) -> object:
        """Put what an armed fetch delivered in the ready buffer; everything it does before its first ``await``
        runs at once (so no reply is dropped by a later cancel)."""

    def wake(self) -> None:
        """Wake the consumer: a claim is over, or a watcher failed."""

    def reply_lost(self) -> None:
        """An armed fetch's reply was lost: the consumer owns messages it does not know of."""


class ArmedWait:
    """The armed waits of one consumer (see the module docstring).

    Args:
        ops: the server calls.
        host: the consumer.
    """

    def __init__(self, ops: RedisOps, host: WaitHost) -> None:
        self._ops = ops
        self._host = host
        self.key = ops.keys.claim(uuid.uuid4().hex)
        self._error: TransportError | None = None  # a watcher's failure, for `wait` to raise
        self._failures = 0  # watcher failures raised by `wait`: each makes the generation change
        self._written = False  # the claim key may exist: delete it at the end
        self._open_generation = 0  # the generation the last claim was opened for
        self._opens = 0  # the id of the last claim opened (they count up from 1)
        self._over = 0  # the id of the last claim known to be over
        self._order: list[tuple[str, str]] = []  # the lists the last claim was opened for
        self._armable = asyncio.Event()  # set (and replaced) each time a claim opens
        self._progress = asyncio.Event()  # set (and replaced) each time a request ends: `disarm` waits on it
        self._requests: dict[str, str] = {}  # armed fetches on the wire: request id -> list key
        self._request_ids = itertools.count(1)
        self._watchers: dict[str, asyncio.Task[None]] = {}

    async def wait(self, queues: Sequence[str]) -> bool:
        """True while the consumer is armed: it waits for its wake-up instead of fetching (the watchers' armed
        fetches take what comes). A claim opened for an older generation is disarmed first (stopping the
        watchers of lists no longer consumed) and the consumer woken; False: fetch by yourself (`fetch`).

        Raises:
            TransportError: a watcher failed (raised once; the others stay, one may hold a claim's reply), or
                disarming failed (still armed: call again).
        """
        if self._error is not None:
            error, self._error = self._error, None
            # The failed watcher has ended. The open claim is out of date: it is closed before the next fetch,
            # which needs Redis back.
            self._failures += 1
            raise error
        if not self._armed:
            return False
        if self._stale:
            await self._disarm({key for _, key in self._ops.keys.consume_order(queues)})
            self._host.wake()  # go round again: the disarm may have delivered messages, or the consumer may fetch
        else:  # idle: restart any watcher that failed
            self._watch()
        return True

    async def fetch(self, queues: Sequence[str], credit: int) -> Outcome:
        """The consumer's own fetch of up to ``credit`` messages (only when `wait` returned False).

        When every list is empty the script opens the claim for ``credit`` messages, and (unless the consumer
        is stopping by then) one watcher per list blocks with its armed fetch.
        """
        order = self._ops.keys.consume_order(queues)
        generation, claim_id = self._generation, self._opens + 1
        self._written = True
        outcome = await self._ops.fetch(order, credit, self.key, generation, claim_id)
        if outcome.state == "opened":
            self._opened(generation, claim_id, order, watch=not self._host.stopping)
        return outcome

    @property
    def _generation(self) -> int:
        """The consumer's version, and one more for each watcher failure."""
        return self._host.version + self._failures

    @property
    def _armed(self) -> bool:
        """A claim is open, or taken but not yet heard of: the consumer must not fetch by itself."""
        return self._opens > self._over

    @property
    def _stale(self) -> bool:
        """The open claim is for an older generation: disarm before fetching again."""
        return self._open_generation != self._generation

    def _opened(self, generation: int, claim_id: int, order: Sequence[tuple[str, str]], watch: bool) -> None:
        """The consumer's fetch opened claim ``claim_id`` over the lists of ``order``; ``watch``: arm on them."""
        # An armed fetch may have taken this claim already (its reply heard first): then it is over already.
        self._opens = claim_id
        self._open_generation = generation
        self._order = list(order)
        if self._armed and watch:
            self._watch()
            self._armable.set()
            self._armable = asyncio.Event()

    def _watch(self) -> None:
        """One watcher per list of the open claim. Others are cancelled: their armed fetches are for an older
        generation, which the open claim refuses, so cancelling them strands nothing."""
        wanted = {key for _, key in self._order}
        for key in wanted - self._watchers.keys():
            self._watchers[key] = asyncio.create_task(self._watch_list(key), name=f"celeriac-redis-watch {key!r}")
        for key in self._watchers.keys() - wanted:
            self._watchers.pop(key).cancel()

    async def _disarm(self, consumed: set[str]) -> None:
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
                self._host.reply_lost()
        self._over = max(self._over, closing)
        for key in self._watchers.keys() - consumed:
            self._watchers.pop(key).cancel()

    async def close(self) -> None:
        """The consumer ends: close and delete the claim, then stop every watcher (nothing stranded)."""
        try:
            if self._armed:
                await self._disarm(set())
            if self._written:
                await self._ops.delete_claim(self.key)
                self._written = False
        except TransportError as exc:
            log.warning("could not close consumer claim %s (it expires by itself): %s", self.key, exc)
        finally:
            for task in self._watchers.values():
                task.cancel()
            self._watchers.clear()

    async def _watch_list(self, key: str) -> None:
        """Block on ``key`` with an armed fetch behind, once per open claim (again while it stays open)."""
        waiter = Waiter(self._ops)
        done = 0  # the claims this watcher is finished with
        try:
            while True:
                raise_if_cancelled()
                while not (self._armed and not self._stale and self._opens > done):
                    await self._armable.wait()
                opens, generation, order = self._opens, self._open_generation, self._order
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
                await self._host.take(outcome)
        except TransportError as exc:
            self._error = exc
            self._host.wake()
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
            self._host.reply_lost()
            self._over = max(self._over, opens)
        elif outcome.state == "stale" and outcome.detail is None and opens == self._opens:
            self._over = opens  # the claim expired (no armed fetch renewed it for claim_ttl): open one again
        else:
            return
        self._host.wake()
