"""The broker link breaks under a running worker (Redis CLIENT KILL): it reconnects on its own and finishes."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from celeriac import App

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import WorkerProcess

redis = pytest.importorskip("redis")


def kill_connections_of(url: str, pid: int) -> int:
    """Kill every Redis connection the worker process opened (named celeriac-<host>-<pid>)."""
    client = redis.Redis.from_url(url)
    try:
        killed = 0
        for entry in client.client_list():
            if entry.get("name", "").endswith(f"-{pid}"):
                killed += client.client_kill_filter(_id=entry["id"])
        return killed
    finally:
        client.close()


def test_worker_reconnects_after_its_connections_are_killed(redis_url: str, queue_name: str) -> None:
    producer = App("taskapp", broker=redis_url)
    worker = WorkerProcess(redis_url, ["-Q", queue_name, "-c", "4"])
    try:
        worker.wait_for_output("ready.")
        first = [producer.send_task("taskapp.add", [i, 1], queue=queue_name) for i in range(20)]
        assert [r.get(timeout=30) for r in first] == [i + 1 for i in range(20)]
        assert kill_connections_of(redis_url, worker.proc.pid) > 0
        # redis-py may re-open a killed connection by itself; otherwise the consumer reconnects: either way
        # every later task must run.
        second = [producer.send_task("taskapp.add", [i, 2], queue=queue_name) for i in range(20)]
        assert [r.get(timeout=60) for r in second] == [i + 2 for i in range(20)]
    finally:
        worker.signal(signal.SIGTERM)
        code = worker.wait()
        producer.close()
    assert code == 0, worker.output
