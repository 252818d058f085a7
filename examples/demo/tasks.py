"""The demo's tasks: one sync, one async, one that retries, one that fails."""

from __future__ import annotations

import asyncio
import os

from celeriac import App

# No broker configured: the embedded SQLite file is used for messages and results.
app = App("tasks", broker=os.environ.get("DEMO_BROKER", "sqlite:///.demo/celeriac.db"))


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
async def slow_square(x: int) -> int:
    await asyncio.sleep(0.1)
    return x * x


@app.task(bind=True, max_retries=3, default_retry_delay=0.2)
def flaky(self, attempts_needed: int) -> str:  # type: ignore[no-untyped-def]
    if self.request.retries < attempts_needed:
        raise self.retry()
    return f"succeeded after {self.request.retries} retries"


@app.task
def divide(x: float, y: float) -> float:
    return x / y
