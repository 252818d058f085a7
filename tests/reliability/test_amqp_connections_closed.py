"""RabbitMQ closes every connection mid-run (``rabbitmqctl close_all_connections``): the worker and a client that
keeps publishing both reconnect on their own, and nothing RabbitMQ confirmed is lost.

The client publishes 1,000 ``acks_late`` tasks from a thread through the ordinary sync API; a send that fails
while the link is down is retried by the test's loop (counted), never re-opened by hand. The worker is the same
process before and after.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import App
from celeriac.errors import CeleriacError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relkit import Ledger, RabbitVhost, open_vhost, wait_until

pytestmark = pytest.mark.amqp

TASKS = 1000


@pytest.fixture
def vhost() -> Iterator[RabbitVhost]:
    made = open_vhost("rel-close")
    yield made
    made.delete()


def test_worker_and_publisher_recover_from_closed_connections(
    vhost: RabbitVhost, queue_name: str, ledger: Ledger, workers: Callable[..., Any]
) -> None:
    worker = workers(vhost.url, "", ledger, ["-Q", queue_name, "-P", "threads", "-c", "4"])
    worker.wait_for_output("ready.", timeout=60)
    producer = App("relapp", broker=vhost.url)
    failures: list[str] = []
    done = threading.Event()

    def publish() -> None:
        try:
            for i in range(TASKS):
                while True:
                    try:
                        producer.send_task("relapp.mark_late", [f"t{i}", 0.001], queue=queue_name)
                        break
                    except CeleriacError as exc:  # the link was down for this send: the next one reconnects
                        failures.append(str(exc))
                        assert len(failures) < 50, failures[-3:]
                ledger.published.append(f"t{i}")
                time.sleep(0.002)  # a steady trickle, so the close lands mid-run (pacing, not synchronization)
        finally:
            done.set()

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        wait_until(lambda: ledger.ran(ledger.published) >= TASKS // 4, 60, "a quarter ran before the close")
        vhost.close_all_connections()
        closed_at = len(ledger.published)
        assert done.wait(120), "the publisher did not finish"
        wait_until(lambda: ledger.ran(ledger.published) >= TASKS, 120, "every published task ran")
    finally:
        done.wait(30)
        producer.close()
    lost, _ = ledger.report(f"RabbitMQ closed every connection after {closed_at} publishes")
    print(f"[close-all] sends that failed while the link was down: {len(failures)}")
    assert lost == 0
    assert closed_at < TASKS, "the close came after the last publish: the test proved nothing"
    assert worker.proc.poll() is None, "the worker exited:\n" + worker.output[-3000:]
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output[-3000:]
