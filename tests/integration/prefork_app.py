"""Tasks for the prefork and time-limit process tests (``celeriac -A prefork_app worker -P prefork``).

Configured from the environment: ``CELERIAC_BROKER_URL`` (broker and results, one Redis database),
``TEST_KEYPREFIX`` (``global_keyprefix`` of both), ``TEST_LEDGER`` (a file each run of ``lost_late``
appends to), ``TEST_MAX_DELIVERIES`` (``broker_max_deliveries``).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import time
from pathlib import Path

from celeriac import App
from celeriac.exceptions import SoftTimeLimitExceeded

URL = os.environ.get("CELERIAC_BROKER_URL", "redis://127.0.0.1:6379/15")
PREFIX = os.environ.get("TEST_KEYPREFIX", "")
LEDGER = os.environ.get("TEST_LEDGER")

app = App("prefork_app", broker=URL, backend=URL)
app.conf.broker_transport_options = {"global_keyprefix": PREFIX}
app.conf.result_backend_transport_options = {"global_keyprefix": PREFIX}
app.conf.broker_max_deliveries = int(os.environ.get("TEST_MAX_DELIVERIES", "10"))
app.conf.worker_pool_start_method = os.environ.get("TEST_START_METHOD", "fork")

_kept: list[bytearray] = []  # what `hog` holds on to, so the child's memory stays up


@app.task
def pid() -> int:
    return os.getpid()


@app.task
async def apid() -> int:
    await asyncio.sleep(0)
    return os.getpid()


@app.task
def burn(barrier: str, parties: int, timeout: float = 30.0) -> tuple[int, int, float]:
    """CPU-bound: marks itself in ``barrier`` and burns CPU until ``parties`` runs are marked, then returns
    (pid, sum, CPU seconds burnt). It ends only if all the parties ran at the same time."""
    Path(barrier, str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    total = 0
    while len(os.listdir(barrier)) < parties and time.monotonic() < deadline:
        total = sum(range(200_000))
    return os.getpid(), total, time.process_time()


@app.task
def wait_for_file(path: str, timeout: float = 30.0) -> int:
    """Block until ``path`` exists; returns the pid that ran it."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


@app.task
def soft_sleep(seconds: float) -> str:
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "slept"


@app.task
async def asoft_sleep(seconds: float) -> str:
    try:
        await asyncio.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "slept"


@app.task
def hang(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@app.task
def spin(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "spun"


@app.task
def exit_child() -> None:
    os._exit(3)


@app.task
def kill_child() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@app.task
def segfault() -> bytes:
    return ctypes.string_at(0)


@app.task
def hog(mib: int) -> int:
    _kept.append(bytearray(mib * 1024 * 1024))  # zero-filled pages are touched: resident
    for block in _kept:
        block[::4096] = b"\1" * len(block[::4096])
    return os.getpid()


@app.task(acks_late=True, reject_on_worker_lost=True)
def lost_late() -> None:
    if LEDGER:
        with open(LEDGER, "a") as handle:
            handle.write(f"{os.getpid()}\n")
    os._exit(1)
