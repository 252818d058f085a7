"""Rate limits and the state file: token buckets, rate strings, the limiter's holding; statedb round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from celeriac.errors import ConfigurationError
from celeriac.testing import wait_for
from celeriac.worker.ratelimit import RateLimiter, TokenBucket, parse_rate
from celeriac.worker.state import WorkerState
from celeriac.worker.statedb import load_state, save_state
from celeriac.worker.timer import Timer


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("10/s", 10.0), ("120/m", 2.0), ("3600/h", 1.0), ("5", 5.0), (2, 2.0), ("0", None), ("", None), (None, None)],
)
def test_parse_rate(text: Any, per_second: float | None) -> None:
    assert parse_rate(text) == per_second


@pytest.mark.parametrize("text", ["ten/s", "10/x", "-1/s"])
def test_parse_rate_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)


def test_token_bucket_refills_at_its_rate_and_holds_one() -> None:
    now = [0.0]
    bucket = TokenBucket(2.0, clock=lambda: now[0])  # 2 per second, capacity 1
    assert bucket.consume() and not bucket.consume()
    assert bucket.expected_time() == pytest.approx(0.5)
    now[0] = 0.25
    assert not bucket.consume() and bucket.expected_time() == pytest.approx(0.25)
    now[0] = 10.0  # a long pause fills it only to capacity: no burst
    assert bucket.consume() and not bucket.consume()


class FakeTask:
    def __init__(self, name: str, rate_limit: str | None) -> None:
        self.name = name
        self.rate_limit = rate_limit


class FakeRequest:
    def __init__(self, task: FakeTask, task_id: str) -> None:
        self.task = task
        self.id = task_id


async def test_limiter_holds_in_order_and_releases_on_reset() -> None:
    released: list[str] = []
    limiter = RateLimiter(Timer(), lambda request: released.append(request.id))
    slow = FakeTask("slow", "1/h")
    free = FakeTask("free", None)
    requests = [FakeRequest(slow, f"s{n}") for n in range(3)]
    assert limiter.admit(requests[0])  # type: ignore[arg-type]  # the first token is there
    assert not limiter.admit(requests[1]) and not limiter.admit(requests[2])  # type: ignore[arg-type]
    assert limiter.admit(FakeRequest(free, "f"))  # type: ignore[arg-type]  # other tasks are not held
    assert len(limiter) == 2 and [r.id for r in limiter.requests()] == ["s1", "s2"]
    assert [r.id for r in limiter.take(["s2"])] == ["s2"]
    slow.rate_limit = None
    limiter.reset("slow")
    assert released == ["s1"] and len(limiter) == 0


def test_statedb_round_trip_keeps_ids_ages_and_clock(tmp_path: Path) -> None:
    path = str(tmp_path / "worker.state")
    state = WorkerState()
    state.revoked.add("old", at=1_000.0)  # expired long ago: not kept
    state.revoked.add("a")
    state.revoked.add("b")
    state.clock.adjust(41)
    save_state(path, state)
    again = WorkerState()
    assert load_state(path, again) == 2
    assert [task_id for task_id, _ in again.revoked.items()] == ["a", "b"]
    assert again.clock.value > 41
    assert load_state(str(tmp_path / "missing"), WorkerState()) == 0
    Path(path).write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigurationError, match="not a celeriac state file"):
        load_state(path, WorkerState())


async def test_pool_grows_shrinks_and_cancels_one_job() -> None:
    import asyncio

    from celeriac.app.registry import TaskRegistry
    from celeriac.pools.aio import AsyncioPool

    pool = AsyncioPool(2, TaskRegistry())
    await pool.start()
    gate = asyncio.Event()
    done: list[str] = []

    class Job:
        def __init__(self, tag: str) -> None:
            self.tag = tag

        async def run(self) -> None:
            try:
                await gate.wait()
                done.append(self.tag)
            except asyncio.CancelledError:
                done.append(f"{self.tag} cancelled")

    pool.grow(2)
    assert pool.concurrency == 4
    jobs = [Job(str(n)) for n in range(3)]
    for job in jobs:
        pool.submit(job)
    await wait_for(lambda: len(pool.running_jobs()) == 3)
    pool.shrink(2)  # one idle runner stops now, one busy runner after its job
    assert pool.concurrency == 2
    assert pool.cancel(jobs[0]) and not pool.cancel(Job("never submitted"))
    with pytest.raises(ValueError):
        pool.shrink(2)
    gate.set()
    await wait_for(lambda: len(done) == 3)
    assert sorted(done) == ["0 cancelled", "1", "2"]
    pool.submit(Job("after"))
    await wait_for(lambda: done[-1] == "after")
    await pool.stop()
