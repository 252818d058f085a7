"""``-P solo`` keeps renewing the lease of a long sync body, so no other worker gets its message.

Issue 10, item 5: the solo pool ran a sync body inline, blocking the worker's loop, so the Redis lease of the
message in flight was never renewed; after the visibility timeout another worker's restorer handed it on and
the task ran twice. Now the body runs in the pool's own thread and the loop goes on renewing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from celeriac import App
from celeriac._portal import portal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relkit import Ledger

pytestmark = pytest.mark.redis

ENV = {"REL_VISIBILITY": "3"}  # restores after 3 s without renewal; the task takes 8 s


def test_a_long_solo_task_runs_exactly_once(
    redis_url: str, prefix: str, queue_name: str, ledger: Ledger, workers: Callable[..., Any]
) -> None:
    solo = workers(redis_url, prefix, ledger, ["-Q", queue_name, "-P", "solo", "-n", "solo@%h"], ENV)
    solo.wait_for_output("ready.")
    producer = App("relapp", broker=redis_url)
    producer.conf.broker_transport_options = {"global_keyprefix": prefix}
    try:
        result = portal.run(producer.asend_task("relapp.mark_late", ["long", 8.0], queue=queue_name))
        ledger.published.append("long")
    finally:
        producer.close()
    solo.wait_for_output(f"[{result.id}] received", timeout=15)
    args = ["-Q", queue_name, "-P", "threads", "-c", "2", "-n", "other@%h"]
    other = workers(redis_url, prefix, ledger, args, ENV)
    other.wait_for_output("ready.")
    started = time.monotonic()
    solo.wait_for_output(f"[{result.id}] succeeded", timeout=30)
    assert time.monotonic() - started > 3  # the body outlived the visibility timeout while the other worker ran
    # A warm stop lets a second run (had the other worker been handed the message) finish and reach the ledger.
    assert other.stop() == 0 and solo.stop() == 0
    lost, duplicated = ledger.report("a solo sync task longer than the visibility timeout")
    assert (lost, duplicated) == (0, 0), other.output[-3000:]
    assert f"[{result.id}] received" not in other.output
