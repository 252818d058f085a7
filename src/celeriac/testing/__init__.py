"""Helpers for celeriac's tests and users' tests: run a worker in-process, wait on conditions.

Wait on conditions, never on the clock::

    async with start_worker(app, concurrency=4) as worker:
        result = await add.adelay(2, 3)
        assert await result.aget(timeout=10) == 5
        await wait_for(lambda: worker.state.processed == 1, timeout=10)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from celeriac.app.app import App
from celeriac.worker import Worker


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, interval: float = 0.01
) -> None:
    """Return as soon as ``condition()`` is true; raise AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def start_worker(app: App, **options: Any) -> AsyncIterator[Worker]:
    """Run a `Worker` for ``app`` on the current loop for the ``async with`` block, then stop it warmly.

    As Celery's test worker, it starts without mingle, gossip and heartbeats (no 1 s hello round, no events
    between test workers) unless the options say otherwise (``without_mingle=False``...).
    """
    for quiet in ("without_mingle", "without_gossip", "without_heartbeat"):
        options.setdefault(quiet, True)
    worker = Worker(app, **options)
    runner = asyncio.create_task(worker.run(install_signal_handlers=False))
    started = asyncio.create_task(worker.wait_started())
    await asyncio.wait({runner, started}, return_when=asyncio.FIRST_COMPLETED)
    if runner.done():
        started.cancel()
        runner.result()  # raises the start-up error
    try:
        yield worker
    finally:
        worker.request_shutdown()
        await runner
