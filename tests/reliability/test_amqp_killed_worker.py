"""RabbitMQ: a worker SIGKILLed three times during 2,000 ``acks_late`` tasks loses none of them.

RabbitMQ gives back a dead connection's unacked deliveries at once; the next worker runs them. The ledger counts
every confirmed publish and every run: 0 lost (runs of a task killed mid-way may repeat: at least once).
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import App
from celeriac._portal import portal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relkit import Ledger, RabbitVhost, open_vhost, wait_until

pytestmark = pytest.mark.amqp

TASKS = 2000
ARGS = ["-P", "threads", "-c", "8"]


@pytest.fixture
def vhost() -> Iterator[RabbitVhost]:
    made = open_vhost("rel-kill")
    yield made
    made.delete()


def test_three_sigkills_during_2000_acks_late_tasks_lose_none(
    vhost: RabbitVhost, queue_name: str, ledger: Ledger, workers: Callable[..., Any]
) -> None:
    producer = App("relapp", broker=vhost.url)
    try:

        async def publish() -> None:
            for i in range(TASKS):
                await producer.asend_task("relapp.mark_late", [f"t{i}", 0.002], queue=queue_name)
                ledger.published.append(f"t{i}")  # confirmed by RabbitMQ: the send returned

        portal.run(publish())
    finally:
        producer.close()
    args = ["-Q", queue_name, *ARGS]
    worker = workers(vhost.url, "", ledger, args)
    for kill in range(3):
        target = TASKS * (kill + 1) // 4
        wait_until(lambda n=target: ledger.ran(ledger.published) >= n, 120, f"{target} tasks ran before kill {kill}")
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(timeout=10)
        worker = workers(vhost.url, "", ledger, args)
    deadline = time.monotonic() + 120
    while ledger.ran(ledger.published) < TASKS:
        assert time.monotonic() < deadline, "tasks were lost:\n" + worker.output[-3000:]
        time.sleep(0.05)
    lost, _ = ledger.report("RabbitMQ, acks_late, SIGKILL x3 during 2,000 tasks")
    assert lost == 0
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output[-3000:]
    assert vhost.messages(queue_name) == 0  # everything acked
