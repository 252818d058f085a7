"""Hard time limits start when the body starts, and a body that cannot be stopped does not starve later tasks."""

from __future__ import annotations

import threading
import time

import pytest

from celeriac import App, State
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
