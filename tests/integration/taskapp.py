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


# -- Added for tests/integration/test_redis_reliability.py and tests/interop/test_celery_interop.py -------------
# TEST_KEYPREFIX puts every broker and result key of the worker under one prefix (the test deletes them after);
# TEST_RENEW_INTERVAL, TEST_MUTEX_EXPIRE and TEST_BLOCK_TIMEOUT set those broker_transport_options,
# TEST_MAX_DELIVERIES sets broker_max_deliveries.
_transport_options = dict(app.conf.broker_transport_options)
if os.environ.get("TEST_KEYPREFIX"):
    _transport_options["global_keyprefix"] = os.environ["TEST_KEYPREFIX"]
    app.conf.result_backend_transport_options = {"global_keyprefix": os.environ["TEST_KEYPREFIX"]}
if os.environ.get("TEST_RENEW_INTERVAL"):
    _transport_options["renew_interval"] = float(os.environ["TEST_RENEW_INTERVAL"])
if os.environ.get("TEST_MUTEX_EXPIRE"):
    _transport_options["unacked_mutex_expire"] = float(os.environ["TEST_MUTEX_EXPIRE"])
if os.environ.get("TEST_BLOCK_TIMEOUT"):
    _transport_options["block_timeout"] = float(os.environ["TEST_BLOCK_TIMEOUT"])
if os.environ.get("TEST_MAX_DELIVERIES"):
    app.conf.broker_max_deliveries = int(os.environ["TEST_MAX_DELIVERIES"])
app.conf.broker_transport_options = _transport_options
if os.environ.get("TEST_DEFAULT_QUEUE"):  # where canvas steps sent by the worker go (tests/interop canvas)
    app.conf.task_default_queue = os.environ["TEST_DEFAULT_QUEUE"]


@app.task
def mark(tag: str) -> str:
    """Record one run of ``tag`` as ``<tag> celeriac`` (its Celery twin in tests/interop writes ``<tag> celery``)."""
    record(f"{tag} celeriac")
    return tag


@app.task(acks_late=True)
def poison() -> None:
    """Kill the worker that runs it, every time (as an out-of-memory kill would): its message is never acked."""
    record("start poison")
    os.kill(os.getpid(), 9)  # SIGKILL


@app.task
def tsum(values: list[int]) -> int:
    """The sum of a list (a chord body); its Celery twin is in tests/interop/celery_taskapp.py."""
    return sum(values)
