"""The join and the lease every result backend must offer (`celeriac.backends.base`), checked the same way on
each: a join hands its set out exactly once, whatever the races and repeats; a lease has one holder at a time,
its token grows with every hand-over, and a stale token writes nothing."""

from __future__ import annotations

import asyncio
import uuid

from celeriac.backends.base import ResultBackend
from celeriac.testing.contract.backend import task_meta
from celeriac.testing.contract.helpers import BackendCheck, BackendFactory, raises, wait_for

SHORT_TTL = 0.3  # seconds: a lease that is quick to see expire


def _name(kind: str) -> str:
    return f"{kind}-{uuid.uuid4()}"


async def check_join_hands_the_set_out_once(make: BackendFactory) -> None:
    """Only the add that completes the join gets the records, ordered by index; a repeated index never counts."""
    group = _name("group")
    records = [task_meta(f"{group}-{i}", "SUCCESS", i) for i in range(3)]
    async with make() as backend:
        assert await backend.join_add(group, 2, records[2], 3) is None
        assert await backend.join_add(group, 0, records[0], 3) is None
        repeat = task_meta(records[0]["task_id"], "SUCCESS", "again")
        assert await backend.join_add(group, 0, repeat, 3) is None  # a redelivered member: not a second count
        assert await backend.join_add(group, 1, records[1], 3) == records  # the first record of 0 is kept
        assert await backend.join_add(group, 1, records[1], 3) is None  # once only
        with raises(ValueError):
            await backend.join_add(group, 3, records[0], 3)


async def check_join_concurrent_members(make: BackendFactory) -> None:
    """Members (and their redeliveries) racing from two connections: exactly one add gets the whole set."""
    group, size = _name("group"), 20
    records = [task_meta(f"{group}-{i}", "SUCCESS", i) for i in range(size)]
    async with make() as first, make() as second:
        adds = [
            (first if i % 2 else second).join_add(group, i % size, records[i % size], size) for i in range(size * 2)
        ]
        outcomes = await asyncio.gather(*adds)
        complete = [outcome for outcome in outcomes if outcome is not None]
        assert complete == [records], f"{len(complete)} adds got the set"


async def check_lease_is_exclusive(make: BackendFactory) -> None:
    """One holder at a time; the holder re-acquiring keeps its token; a release lets the next one in."""
    name = _name("lease")
    async with make() as backend:
        token = await backend.acquire_lease(name, "a", 10.0)
        assert token is not None
        assert await backend.acquire_lease(name, "b", 10.0) is None
        assert await backend.acquire_lease(name, "a", 10.0) == token  # held already: same token
        assert await backend.renew_lease(name, "a", token, 10.0)
        assert not await backend.renew_lease(name, "b", token, 10.0)
        assert not await backend.release_lease(name, "a", token + 1)  # not its token: nothing happens
        assert await backend.acquire_lease(name, "b", 10.0) is None
        assert await backend.release_lease(name, "a", token)
        assert not await backend.renew_lease(name, "a", token, 10.0)
        taken = await backend.acquire_lease(name, "b", 10.0)
        assert taken is not None and taken > token


async def check_lease_expiry_and_fencing(make: BackendFactory) -> None:
    """An expired lease goes to the next acquirer under a greater token; the old token writes nothing."""
    name = _name("lease")
    async with make() as backend, make() as other:
        old = await backend.acquire_lease(name, "a", SHORT_TTL)
        assert old is not None
        assert await backend.record_fenced(name, old, "last-run", b"1")
        assert await other.acquire_lease(name, "b", 10.0) is None

        async def taken_over() -> bool:
            return await other.acquire_lease(name, "b", 10.0) is not None

        await wait_for(taken_over, what="the expired lease taken over")
        new = await other.acquire_lease(name, "b", 10.0)
        assert new is not None and new > old
        assert not await backend.renew_lease(name, "a", old, 10.0)  # the paused ex-leader learns it lost
        assert not await backend.record_fenced(name, old, "last-run", b"2")  # and cannot record a fire
        assert await backend.read_fenced(name, "last-run") == b"1"
        assert await other.record_fenced(name, new, "last-run", b"3")
        assert await backend.read_fenced(name, "last-run") == b"3"
        assert await backend.read_fenced(name, "never") is None


async def check_lease_tokens_increase(make: BackendFactory) -> None:
    """Each hand-over (release or expiry, to the same holder or another) yields a strictly greater token."""
    name = _name("lease")
    async with make() as backend:
        tokens: list[int] = []
        for holder in ("a", "b", "a", "a"):
            token = await backend.acquire_lease(name, holder, 10.0)
            assert token is not None
            tokens.append(token)
            assert await backend.release_lease(name, holder, token)
        assert tokens == sorted(set(tokens)), tokens


async def check_lease_concurrent_acquirers(make: BackendFactory) -> None:
    """Acquirers racing from two connections: exactly one wins."""
    name = _name("lease")
    async with make() as first, make() as second:
        backends: list[ResultBackend] = [first, second]
        holders = [f"h{i}" for i in range(10)]
        tokens = await asyncio.gather(*(backends[i % 2].acquire_lease(name, h, 10.0) for i, h in enumerate(holders)))
        winners = [holder for holder, token in zip(holders, tokens, strict=True) if token is not None]
        assert len(winners) == 1, winners


PRIMITIVE_CHECKS: tuple[BackendCheck, ...] = (
    check_join_hands_the_set_out_once,
    check_join_concurrent_members,
    check_lease_is_exclusive,
    check_lease_expiry_and_fencing,
    check_lease_tokens_increase,
    check_lease_concurrent_acquirers,
)
