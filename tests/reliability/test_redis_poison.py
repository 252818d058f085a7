"""A poison task that kills its worker is dead-lettered alone: the innocent tasks prefetched with it all run.

Issue 10, "Also": deliveries were counted per fetch, so the messages prefetched in the poison's batch died with it
each time and reached ``max_deliveries`` together with it. Now a message the visibility restore brings back (its
worker died holding it) is fetched alone, so only the poison keeps being counted.
"""

from __future__ import annotations

import json
import sys
import time
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

ENV = {"REL_VISIBILITY": "1", "REL_MAX_DELIVERIES": "2", "REL_MUTEX_EXPIRE": "1"}


def test_poison_is_dead_lettered_alone_and_its_batch_runs(
    redis_url: str, prefix: str, queue_name: str, ledger: Ledger, workers: Callable[..., Any]
) -> None:
    producer = App("relapp", broker=redis_url)
    producer.conf.broker_transport_options = {"global_keyprefix": prefix}
    try:

        async def publish() -> str:
            poison = await producer.asend_task("relapp.poison", [], queue=queue_name)
            for i in range(12):
                await producer.asend_task("relapp.mark_late", [f"t{i}", 0.05], queue=queue_name)
                ledger.published.append(f"t{i}")
            return poison.id

        poison_id = portal.run(publish())
    finally:
        producer.close()
    args = ["-Q", queue_name, "-P", "threads", "-c", "2"]  # a prefetch window of 8: the poison's batch
    started = [workers(redis_url, prefix, ledger, args, ENV)]
    client = redis.Redis.from_url(redis_url)
    dead_letters = f"{prefix}{queue_name}.dead"
    deadline = time.monotonic() + 60
    try:
        # Until every innocent task ran and the poison is dead-lettered; a worker the poison killed is replaced
        # (also after the innocents are done: the poison's last delivery may kill the worker then).
        while ledger.ran(ledger.published) < len(ledger.published) or client.llen(dead_letters) == 0:
            if started[-1].proc.poll() is not None:  # the poison killed it: start the next one
                assert len(started) <= 3, f"the poison killed {len(started)} workers (max_deliveries=2)"
                started.append(workers(redis_url, prefix, ledger, args, ENV))
            assert time.monotonic() < deadline, (
                "innocents not all run or poison not dead-lettered:\n" + (started[-1].output[-3000:])
            )
            time.sleep(0.05)
        lost, _ = ledger.report("innocent tasks prefetched with a poison task")
        assert lost == 0
        wait_until(lambda: client.llen(dead_letters) == 1, 20, "the poison dead-lettered")
        [dead] = client.lrange(f"{prefix}{queue_name}.dead", 0, -1)
        assert json.loads(dead)["headers"]["id"] == poison_id  # the poison alone
    finally:
        client.close()
    print(f"[poison] workers killed: {len(started) - 1}, runs of the poison: {ledger.executed()['poison']}")
