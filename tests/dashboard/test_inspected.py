"""What the Workers page asks a real worker (in-process, SQLite): pool, concurrency, queues, and its reserved and
scheduled (ETA) task counts."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("starlette")

from celeriac import App
from celeriac.dashboard.inspected import Inspected
from celeriac.testing import start_worker


async def test_counts_of_a_worker(sqlite_url: str) -> None:
    app = App("inspected", broker=sqlite_url)
    gate = asyncio.Event()

    @app.task(name="i.held")
    async def held() -> None:
        await gate.wait()

    async with start_worker(app, hostname="seen@itest", concurrency=1):
        first, second = await held.adelay(), await held.adelay()  # one runs, one waits for the slot: reserved
        inspected = Inspected(app, max_age=0.0)
        async with asyncio.timeout(20):
            while inspected.worker("seen@itest").get("reserved") != 1:
                await inspected.refresh()
        row = inspected.worker("seen@itest")
        gate.set()
        await first.aget(timeout=20)
        await second.aget(timeout=20)
    assert row["scheduled"] == 0 and row["concurrency"] == 1 and row["queues"] == "celery"
    assert row["pool"] == "celeriac.pools.aio:AsyncioPool"
    await app.aclose()
