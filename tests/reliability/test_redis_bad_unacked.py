"""One unreadable entry in ``unacked`` no longer disables crash recovery (issue 10 item 2).

A worker is killed holding ``acks_late`` deliveries; the oldest entry of ``unacked`` is not UTF-8 and another has
a NaN priority. A second worker's restorer must dead-letter both (with their reason) and restore the killed
worker's deliveries, so every task runs.
"""

from __future__ import annotations

import signal
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

ENV = {"REL_VISIBILITY": "1", "REL_MUTEX_EXPIRE": "1"}


def entry(tag: str, queue: str, priority: bytes = b"0", note: bytes = b"ok") -> bytes:
    envelope = (
        b'{"body": "W1tdLCB7fSwge31d", "content-encoding": "utf-8", "content-type": "application/json", '
        b'"headers": {"lang": "py", "task": "relapp.mark", "id": "' + tag.encode() + b'", "note": "' + note + b'"}, '
        b'"properties": {"delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "' + queue.encode()
    )
    envelope += b'"}, "priority": ' + priority + b', "body_encoding": "base64", "delivery_tag": "' + tag.encode()
    return b"[" + envelope + b'"}}, "", "' + queue.encode() + b'"]'


def test_bad_unacked_entries_do_not_stop_the_restore_of_a_killed_worker(
    redis_url: str, prefix: str, queue_name: str, ledger: Ledger, workers: Callable[..., Any]
) -> None:
    producer = App("relapp", broker=redis_url)
    producer.conf.broker_transport_options = {"global_keyprefix": prefix}
    try:

        async def publish() -> None:
            for i in range(16):
                await producer.asend_task("relapp.mark_late", [f"t{i}", 0.5], queue=queue_name)
                ledger.published.append(f"t{i}")

        portal.run(publish())
    finally:
        producer.close()
    client = redis.Redis.from_url(redis_url)
    try:
        args = ["-Q", queue_name, "-P", "threads", "-c", "2"]
        first = workers(redis_url, prefix, ledger, args, ENV)
        wait_until(lambda: client.hlen(prefix + "unacked") >= 8, 30, "the first worker holds its window")
        first.signal(signal.SIGKILL)
        first.wait()
        # The oldest entries of unacked: bytes that are not UTF-8, and a NaN priority.
        client.hset(prefix + "unacked", "bad-utf8", entry("bad-utf8", queue_name, note=b"\xff\xfe"))
        client.hset(prefix + "unacked", "bad-nan", entry("bad-nan", queue_name, priority=b"NaN"))
        client.zadd(prefix + "unacked_index", {"bad-utf8": 1.0, "bad-nan": 2.0})
        workers(redis_url, prefix, ledger, args, ENV)
        wait_until(lambda: ledger.ran(ledger.published) == 16, 45, "every task of the killed worker ran")
        lost, _ = ledger.report("tasks of a killed worker behind two unreadable unacked entries")
        assert lost == 0
        reasons = client.hgetall(f"{prefix}{queue_name}.dead.reasons")
        assert set(reasons) == {b"bad-utf8", b"bad-nan"}, reasons
        assert client.llen(f"{prefix}{queue_name}.dead") == 2
    finally:
        client.close()
