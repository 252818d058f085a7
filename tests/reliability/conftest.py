"""Fixtures of the reliability tests (the helpers are in `relkit`): ``ledger``, ``workers``, ``private_redis``."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relkit import Ledger, PrivateRedis, Worker


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger")


@pytest.fixture
def workers() -> Iterator[Callable[..., Worker]]:
    """Start workers with ``workers(url, prefix, ledger, args, env)``; each is stopped (or killed) afterwards."""
    started: list[Worker] = []

    def start(
        url: str, prefix: str, ledger: Ledger, args: Sequence[str] = (), env: dict[str, str] | None = None
    ) -> Worker:
        worker = Worker(url, prefix, ledger, args, env or {})
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.signal(signal.SIGTERM)
    for worker in started:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    directory = tmp_path / "redis"
    directory.mkdir()
    server = PrivateRedis(directory)
    server.start()
    yield server
    server.kill()
