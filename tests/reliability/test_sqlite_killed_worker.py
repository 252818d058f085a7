"""A worker SIGKILLed mid-run on SQLite loses nothing, and its successor does not wait out the lease.

Issue 10, item 6: the default SQLite lease (visibility timeout) is 3,600 s, so the deliveries a killed worker held
came back only an hour later, although each lease names its host and pid. Now a transport that connects (and
every live one, on its lease-renewal cadence) gives back at once the leases of this host's processes that are
gone. A real worker subprocess, ``acks_late``, 300 tasks, one SIGKILL mid-run, a restart: the ledger counts
0 lost, well before the lease could have expired; after a warm stop no row is left.
"""

from __future__ import annotations

import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celeriac import App
from celeriac._portal import portal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relkit import Ledger, wait_until

TASKS = 300
ARGS = ["-P", "threads", "-c", "4"]


def test_killed_worker_loses_nothing_and_its_leases_come_back_at_once(
    tmp_path: Path, queue_name: str, ledger: Ledger, workers: Callable[..., Any]
) -> None:
    path = tmp_path / "broker.db"
    url = f"sqlite:///{path}"
    producer = App("relapp", broker=url)
    producer.conf.broker_transport_options = {"visibility_timeout": 3600.0}  # the default lease: one hour
    try:

        async def publish() -> None:
            for i in range(TASKS):
                await producer.asend_task("relapp.mark_late", [f"t{i}", 0.01], queue=queue_name)
                ledger.published.append(f"t{i}")

        portal.run(publish())
    finally:
        producer.close()
    args = ["-Q", queue_name, *ARGS]
    first = workers(url, "", ledger, args)
    wait_until(lambda: ledger.ran(ledger.published) >= TASKS // 4, 60, "a quarter of the tasks ran")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=10)
    with sqlite3.connect(path) as conn:
        held = conn.execute("SELECT COUNT(*) FROM messages WHERE lease_owner IS NOT NULL").fetchone()[0]
    killed_at = time.monotonic()
    second = workers(url, "", ledger, args)
    deadline = killed_at + 90
    while ledger.ran(ledger.published) < TASKS:
        assert time.monotonic() < deadline, "tasks of the killed worker were not run:\n" + second.output[-3000:]
        time.sleep(0.05)
    took = time.monotonic() - killed_at
    lost, _ = ledger.report(f"sqlite, acks_late, SIGKILL once ({held} leases held at the kill)")
    print(f"[sqlite-kill] all done {took:.1f} s after the kill (the lease is 3600 s)")
    assert lost == 0
    assert held > 0, "the kill came when the worker held nothing: the test proved nothing"
    assert took < 90
    second.signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    with sqlite3.connect(path) as conn:
        left = conn.execute("SELECT COUNT(*), COUNT(lease_owner) FROM messages").fetchone()
    assert tuple(left) == (0, 0), left  # everything acked, nothing leased after a warm stop
