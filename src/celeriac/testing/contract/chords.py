"""The chord join every backend that joins chords must offer (`ResultBackend.chord_part` and friends).

Checked the same way on each store: exactly one caller claims a complete join, whatever the races and
redeliveries; a claim that lapses (its holder died) goes to the next caller; after `chord_done` every caller
reads ``done``; a saved group restores.
"""

from __future__ import annotations

import asyncio
import uuid

from celeriac.backends.base import ChordMember, ResultBackend
from celeriac.testing.contract.helpers import BackendCheck, BackendFactory, wait_for

CLAIM = 30.0  # seconds: a claim that does not lapse during a check
SHORT_CLAIM = 1.0  # seconds: a claim quick to see lapse (Redis TTLs are whole seconds)


def _member(group: str, i: int, state: str = "SUCCESS") -> ChordMember:
    return ChordMember(f"{group}-{i}", state, i * 10)


async def check_chord_claimed_once(make: BackendFactory) -> None:
    """Only the part that completes the join claims it, with every outcome in index order; repeats never count."""
    group = f"chord-{uuid.uuid4()}"
    async with make() as backend:
        await backend.chord_start(group, 3)
        assert (await backend.chord_part(group, 2, _member(group, 2), 3, CLAIM)).status == "waiting"
        assert (await backend.chord_part(group, 0, _member(group, 0), 3, CLAIM)).status == "waiting"
        again = ChordMember(f"{group}-0", "SUCCESS", "second run")
        assert (await backend.chord_part(group, 0, again, 3, CLAIM)).status == "waiting"  # redelivered: no count
        join = await backend.chord_part(group, 1, _member(group, 1), 3, CLAIM)
        assert join.status == "claimed"
        assert join.members == tuple(_member(group, i) for i in range(3))  # the first run of 0 is kept
        assert (await backend.chord_part(group, 1, _member(group, 1), 3, CLAIM)).status == "busy"
        assert await backend.chord_done(group, join.token)
        assert (await backend.chord_part(group, 1, _member(group, 1), 3, CLAIM)).status == "done"
        assert not await backend.chord_done(group, join.token)  # once


async def check_chord_failure_kept(make: BackendFactory) -> None:
    """A failed header outcome is handed out with its state and exception dict."""
    group = f"chord-{uuid.uuid4()}"
    failure = ChordMember(
        f"{group}-1", "FAILURE", {"exc_type": "ValueError", "exc_message": ["x"], "exc_module": "builtins"}
    )
    async with make() as backend:
        await backend.chord_start(group, 2)
        await backend.chord_part(group, 1, failure, 2, CLAIM)
        join = await backend.chord_part(group, 0, _member(group, 0), 2, CLAIM)
        assert join.status == "claimed" and join.members[1] == failure


async def check_chord_size_from_body(make: BackendFactory) -> None:
    """Without chord_start (a Celery 5.0 client), the size the body carries completes the join."""
    group = f"chord-{uuid.uuid4()}"
    async with make() as backend:
        assert (await backend.chord_part(group, 0, _member(group, 0), 2, CLAIM)).status == "waiting"
        assert (await backend.chord_part(group, 1, _member(group, 1), 2, CLAIM)).status == "claimed"


async def check_chord_concurrent_parts(make: BackendFactory) -> None:
    """Parts and their redeliveries racing from two connections: exactly one claims."""
    group, size = f"chord-{uuid.uuid4()}", 20
    async with make() as first, make() as second:
        await first.chord_start(group, size)
        backends: list[ResultBackend] = [first, second]
        parts = [
            backends[i % 2].chord_part(group, i % size, _member(group, i % size), size, CLAIM) for i in range(size * 2)
        ]
        joins = await asyncio.gather(*parts)
        claimed = [j for j in joins if j.status == "claimed"]
        assert len(claimed) == 1, [j.status for j in joins]
        assert [m.task_id for m in claimed[0].members] == [f"{group}-{i}" for i in range(size)]


async def check_chord_lapsed_claim_taken_over(make: BackendFactory) -> None:
    """A claimer that dies without chord_done: once its claim lapses, a redelivered part claims again."""
    group = f"chord-{uuid.uuid4()}"
    async with make() as backend:
        await backend.chord_start(group, 1)
        dead = await backend.chord_part(group, 0, _member(group, 0), 1, SHORT_CLAIM)
        assert dead.status == "claimed"

        async def reclaimed() -> bool:
            join = await backend.chord_part(group, 0, _member(group, 0), 1, CLAIM)
            return join.status == "claimed"

        await wait_for(reclaimed, what="the lapsed claim taken over")
        assert not await backend.chord_done(group, dead.token)  # the dead claimer's token no longer counts


async def check_group_save_restore(make: BackendFactory) -> None:
    """A saved group reads back; forgotten, it is gone."""
    group = f"group-{uuid.uuid4()}"
    value = {"result": [[group, None], [[["a", None], None], [["b", None], None]]]}
    async with make() as backend:
        assert await backend.restore_group(group) is None
        await backend.save_group(group, value)
        assert await backend.restore_group(group) == value
        await backend.forget_group(group)
        assert await backend.restore_group(group) is None


CHORD_CHECKS: tuple[BackendCheck, ...] = (
    check_chord_claimed_once,
    check_chord_failure_kept,
    check_chord_size_from_body,
    check_chord_concurrent_parts,
    check_chord_lapsed_claim_taken_over,
    check_group_save_restore,
)
