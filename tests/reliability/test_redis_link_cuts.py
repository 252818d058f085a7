"""Every link of a Redis worker cut three times mid-run (a TCP proxy): nothing lost, no visibility-timeout wait.

A cut can lose a fetch's reply after the script moved its messages into ``unacked``: the worker (visibility
timeout 1 h) must put such messages back itself, after the retry or after reconnecting (issue 10 item 3).
"""

from __future__ import annotations

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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from relkit import Ledger, wait_until

from tcp_proxy import TcpProxy

pytestmark = pytest.mark.redis


def test_links_cut_three_times_lose_nothing(
    redis_url: str, prefix: str, queue_name: str, ledger: Ledger, workers: Callable[..., Any]
) -> None:
    total = 600
    target = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    proxy = TcpProxy(target["host"], target["port"])
    portal.run(proxy.start())
    producer = App("relapp", broker=redis_url)
    producer.conf.broker_transport_options = {"global_keyprefix": prefix}
    try:

        async def publish() -> None:
            for i in range(total):
                await producer.asend_task("relapp.mark_late", [f"t{i}", 0.01], queue=queue_name)
                ledger.published.append(f"t{i}")

        portal.run(publish())
        url = f"redis://127.0.0.1:{proxy.port}/{target.get('db', 0)}"
        worker = workers(url, prefix, ledger, ["-Q", queue_name, "-P", "threads", "-c", "8"])
        for threshold in (100, 200, 300):
            wait_until(lambda n=threshold: ledger.ran(ledger.published) >= n, 30, f"{threshold} tasks ran")
            portal.run(proxy.stop())  # every link cut: replies on the wire are lost
            time.sleep(0.3)
            portal.run(proxy.start())
        try:
            wait_until(lambda: ledger.ran(ledger.published) == total, 40, "every task ran after the cuts")
        except AssertionError:
            print(worker.output[-4000:])
            raise
        finally:
            lost, duplicated = ledger.report("worker links cut three times under acks_late load")
        assert lost == 0
        assert duplicated <= 3 * 32  # at most what the worker held at each cut ran again
    finally:
        producer.close()
        portal.run(proxy.stop())
