"""Held countdown/ETA deliveries never block the messages behind them on a Redis worker (issue 10 item 1).

A worker with ``-c 8`` (a base window of 32) that holds 2,000 countdown deliveries must still fetch and run the
200 normal tasks published after them. Before the fix its fetch floor (half the window widened by the held
deliveries) could never come free, and it stopped fetching.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from celeriac import App
from celeriac._portal import portal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relkit import Ledger, wait_until

pytestmark = pytest.mark.redis


def test_normal_tasks_behind_2000_held_countdowns_all_run(
    redis_url: str, prefix: str, queue_name: str, ledger: Ledger, workers: Callable[..., Any]
) -> None:
    producer = App("relapp", broker=redis_url)
    producer.conf.broker_transport_options = {"global_keyprefix": prefix}
    try:

        async def publish() -> None:
            for i in range(2000):
                await producer.asend_task("relapp.mark", [f"held{i}"], queue=queue_name, countdown=3600)
            for i in range(200):
                await producer.asend_task("relapp.mark", [f"n{i}"], queue=queue_name)
                ledger.published.append(f"n{i}")

        portal.run(publish())
        worker = workers(redis_url, prefix, ledger, ["-Q", queue_name, "-P", "threads", "-c", "8"])
        try:
            wait_until(lambda: ledger.ran(ledger.published) == 200, 45, "the 200 normal tasks behind the held ones ran")
        except AssertionError:
            print(f"ran {ledger.ran(ledger.published)}; worker log tail:\n{worker.output[-3000:]}")
            raise
        lost, duplicated = ledger.report("normal tasks behind 2,000 held countdowns")
        assert (lost, duplicated) == (0, 0)
        assert not any(tag.startswith("held") for tag in ledger.executed())
    finally:
        producer.close()
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.llen(prefix + queue_name) == 0  # every message was fetched
    finally:
        client.close()
