"""Tasks used by the integration tests; the broker comes from CELERIAC_BROKER_URL (set per test)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from celeriac import App, Reject

app = App("taskapp", broker="sqlite:///taskapp.db")
app.conf.broker_transport_options = {"visibility_timeout": float(os.environ.get("TEST_VISIBILITY", "3600"))}

LEDGER = os.environ.get("TEST_LEDGER")  # a file every execution appends its id to (counts runs across processes)


def record(tag: str) -> None:
    if LEDGER:
        with open(LEDGER, "a") as handle:
            handle.write(tag + "\n")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
async def aadd(x: int, y: int) -> int:
    await asyncio.sleep(0)
    return x + y


@app.task(acks_late=True)
def slow_late(tag: str, seconds: float) -> str:
    record(f"start {tag}")
    time.sleep(seconds)
    record(f"done {tag}")
    return tag


@app.task
async def sleeper(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@app.task
def wait_for_file(path: str, timeout: float = 30.0) -> str:
    """Block until ``path`` exists: lets a test hold a task 'running' for exactly as long as it needs."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.01)
    return "released"


@app.task(acks_late=True)
def wait_for_file_late(path: str, timeout: float = 30.0) -> str:
    record(f"start {path}")
    result: str = wait_for_file(path, timeout)
    return result


@app.task
def fail(message: str) -> None:
    raise ValueError(message)


@app.task
def refuse() -> None:
    raise Reject("no thanks", requeue=False)
