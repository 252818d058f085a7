"""What SIGTERM guarantees, on real worker processes and Redis: 100 ``acks_late`` tasks running, 10 reserved.

Warm shutdown returns the reserved ones at once, waits for the running ones (up to
``worker_soft_shutdown_timeout``, then requeues them) and exits 0; a second signal is a cold shutdown that
requeues every un-acked message and exits at once. Nothing is lost in any of them.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from celeriac import App

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scalekit import Ledger, ScaleWorker, wait_until, write_app

RUNNING = 100
RESERVED = 10
# -c 100 with a prefetch window of 200: all 110 are fetched, 100 run and 10 wait in the worker (reserved).
ARGS = ["-P", "asyncio", "-c", str(RUNNING), "--prefetch-multiplier", "2", "--without-mingle", "--without-gossip"]


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def held(client: redis.Redis, prefix: str) -> tuple[int, int]:
    """(messages in the queue, messages delivered and not acked)."""
    return int(client.llen(f"{prefix}celery")), int(client.hlen(f"{prefix}unacked"))


def start_loaded_worker(tmp_path: Path, url: str, prefix: str, producer: App, **settings: float) -> ScaleWorker:
    """A worker running RUNNING hold tasks with RESERVED more reserved behind them."""
    write_app(tmp_path)
    release = tmp_path / "release"
    worker = ScaleWorker(tmp_path, url, ARGS, prefix=prefix, settings=dict(settings))
    worker.wait_for_output("ready.")
    for index in range(RUNNING + RESERVED):
        producer.send_task("scaleapp.hold", [f"t{index}", str(release)])
    ledger = Ledger(tmp_path / "ledger")
    wait_until(lambda: len(ledger.count("start")) == RUNNING, 60, "100 tasks running")
    wait_until(lambda: worker.output.count("] received") == RUNNING + RESERVED, 30, "10 more reserved")
    return worker


def finish_elsewhere(tmp_path: Path, url: str, prefix: str, expected: int) -> None:
    """Release the tasks and let a fresh worker run whatever is queued; wait until ``expected`` tags are done."""
    (tmp_path / "release").touch()
    ledger = Ledger(tmp_path / "ledger")
    second = ScaleWorker(tmp_path, url, ARGS, prefix=prefix)
    try:
        wait_until(lambda: len(ledger.count("done")) == expected, 60, "every task done")
    finally:
        assert second.stop() == 0


def test_sigterm_returns_reserved_waits_for_running_and_exits_0(
    tmp_path: Path, redis_url: str, prefix: str, producer: App, client: redis.Redis
) -> None:
    worker = start_loaded_worker(tmp_path, redis_url, prefix, producer)
    try:
        worker.signal(signal.SIGTERM)
        worker.wait_for_output("Warm shutdown")
        worker.wait_for_output(f"Returning {RESERVED} unstarted task(s) to the broker")
        wait_until(lambda: held(client, prefix)[0] == RESERVED, 30, "reserved tasks back in the queue")
        assert worker.proc.poll() is None  # still waiting for the running ones
        (tmp_path / "release").touch()
        assert worker.wait(60) == 0
    finally:
        worker.kill()
    ledger = Ledger(tmp_path / "ledger")
    assert len(ledger.count("done")) == RUNNING  # every running task finished in the first worker
    assert held(client, prefix) == (RESERVED, 0)
    finish_elsewhere(tmp_path, redis_url, prefix, RUNNING + RESERVED)
    assert set(ledger.count("done").values()) == {1}  # each ran to its end exactly once


def test_soft_shutdown_timeout_requeues_running_acks_late_tasks_and_exits_0(
    tmp_path: Path, redis_url: str, prefix: str, producer: App, client: redis.Redis
) -> None:
    worker = start_loaded_worker(tmp_path, redis_url, prefix, producer, worker_soft_shutdown_timeout=1.0)
    try:
        worker.signal(signal.SIGTERM)
        assert worker.wait(60) == 0
    finally:
        worker.kill()
    assert "Soft shutdown timeout (1s): cancelling 100 running task(s)" in worker.output
    assert held(client, prefix) == (RUNNING + RESERVED, 0)  # all back in the queue, none left un-acked
    finish_elsewhere(tmp_path, redis_url, prefix, RUNNING + RESERVED)


def test_second_signal_is_cold_requeues_everything_and_exits_at_once(
    tmp_path: Path, redis_url: str, prefix: str, producer: App, client: redis.Redis
) -> None:
    worker = start_loaded_worker(tmp_path, redis_url, prefix, producer)
    try:
        worker.signal(signal.SIGTERM)
        worker.wait_for_output("Returning")
        worker.signal(signal.SIGINT)
        worker.wait_for_output("Cold shutdown")
        worker.wait(30)
    finally:
        worker.kill()
    assert held(client, prefix) == (RUNNING + RESERVED, 0)
    assert not Ledger(tmp_path / "ledger").count("done")
    finish_elsewhere(tmp_path, redis_url, prefix, RUNNING + RESERVED)
