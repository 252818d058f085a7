"""Time limits on the in-process pools: hard limits start when the body starts, a body that cannot be stopped
does not starve later tasks, soft limits are raised inside the body, terminate reaches thread bodies.
(prefork: tests/integration/test_prefork.py.)"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from celeriac import App, State, TaskRevokedError
from celeriac.exceptions import SoftTimeLimitExceeded
from celeriac.testing import start_worker, wait_for


@pytest.fixture
def app(sqlite_url: str) -> App:
    app = App("limits", broker=sqlite_url)
    app.conf.broker_transport_options = {"polling_interval": 0.02}
    return app


@pytest.mark.parametrize("pool", ["threads", "asyncio"])
async def test_queued_tasks_are_not_charged_for_their_wait(app: App, pool: str) -> None:
    @app.task(time_limit=1.5)
    def nap() -> str:
        time.sleep(0.5)
        return "ok"

    async with start_worker(app, pool=pool, concurrency=2):
        results = [await nap.adelay() for _ in range(12)]
        values = [await result.aget(timeout=30, propagate=False) for result in results]
    assert values == ["ok"] * 12
    await app.aclose()


@pytest.mark.parametrize("pool", ["threads", "asyncio"])
async def test_a_stuck_body_is_written_off_and_later_tasks_run(
    app: App, pool: str, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()  # set at the end, so the stuck thread ends with the test
    started = threading.Event()

    @app.task(time_limit=1)
    def stuck() -> None:
        started.set()
        release.wait(30)

    @app.task(time_limit=5)  # before the fix its wait for the stuck thread used it up: failed without running
    def quick(n: int) -> int:
        return n

    try:
        async with start_worker(app, pool=pool, concurrency=1):
            first = await stuck.adelay()
            await wait_for(started.is_set, timeout=10)
            behind = [await quick.adelay(n) for n in range(2)]
            assert [await result.aget(timeout=15) for result in behind] == [0, 1]
            meta = await first.ameta()
            assert meta["status"] == State.FAILURE
            assert "TimeLimitExceeded" in str(meta["result"])
    finally:
        release.set()
    assert any("stuck" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    await app.aclose()


IN_PROCESS = ["asyncio", "threads", "solo"]


@pytest.mark.parametrize("pool", IN_PROCESS)
async def test_soft_limit_is_raised_inside_sync_and_async_bodies(app: App, pool: str) -> None:
    @app.task(soft_time_limit=0.3)
    def nap() -> str:
        try:
            time.sleep(0.05)
            while True:  # a body running Python code sees it at its next bytecode
                time.sleep(0.01)
        except SoftTimeLimitExceeded:
            return "cleaned up"

    @app.task(soft_time_limit=0.3)
    async def anap() -> str:
        try:
            await asyncio.sleep(30)
        except SoftTimeLimitExceeded:
            await asyncio.sleep(0)  # the body may still await while it cleans up
            return "cleaned up"
        return "slept"

    @app.task
    def uncaught() -> None:
        while True:
            time.sleep(0.01)

    async with start_worker(app, pool=pool, concurrency=2):
        assert await (await nap.adelay()).aget(timeout=15) == "cleaned up"
        assert await (await anap.adelay()).aget(timeout=15) == "cleaned up"
        failed = await uncaught.aapply_async(soft_time_limit=0.3)
        await failed.aget(timeout=15, propagate=False)
        meta = await failed.ameta()
    assert meta["status"] == State.FAILURE and meta["result"]["exc_type"] == "SoftTimeLimitExceeded"
    await app.aclose()


@pytest.mark.parametrize("pool", IN_PROCESS)
async def test_hard_limit_cancels_an_async_body(app: App, pool: str) -> None:
    @app.task(time_limit=0.5)
    async def forever() -> None:
        await asyncio.sleep(60)

    async with start_worker(app, pool=pool, concurrency=1):
        result = await forever.adelay()
        await result.aget(timeout=15, propagate=False)
        meta = await result.ameta()
    assert (meta["status"], meta["result"]["exc_type"]) == (State.FAILURE, "TimeLimitExceeded")
    assert meta["result"]["exc_module"] == "billiard.exceptions"
    await app.aclose()


@pytest.mark.parametrize("pool", IN_PROCESS)
async def test_terminate_stops_a_sync_body_in_a_thread(app: App, pool: str) -> None:
    started = threading.Event()
    stopped: list[str] = []

    @app.task
    def loop_forever() -> None:
        started.set()
        try:
            while True:
                time.sleep(0.01)
        except SystemExit:
            stopped.append("SystemExit")
            raise

    async with start_worker(app, pool=pool, concurrency=1):
        result = await loop_forever.adelay()
        await wait_for(started.is_set, timeout=10)
        await app.control.arevoke(result.id, terminate=True, signal="SIGKILL")
        with pytest.raises(TaskRevokedError):
            await result.aget(timeout=15)
        await wait_for(lambda: stopped == ["SystemExit"], timeout=10)
    await app.aclose()


async def test_time_limit_control_command_applies_to_the_next_run(app: App) -> None:
    @app.task
    def nap() -> str:
        try:
            while True:
                time.sleep(0.01)
        except SoftTimeLimitExceeded:
            return "cleaned up"

    async with start_worker(app, pool="threads", concurrency=1):
        await app.control.atime_limit(nap.name, soft=0.3, hard=10, reply=True)
        assert await (await nap.adelay()).aget(timeout=15) == "cleaned up"
    await app.aclose()
