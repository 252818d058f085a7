"""Malformed SQLite rows in front of valid tasks: a real worker starts, dead-letters them, runs every task.

Issue 10, item 6: a row with a wrongly typed column (a text priority, a text ``lease_until``, text that is not
UTF-8) crash-looped the consumer or killed the worker at start. Each is now dead-lettered with its reason (one
error line each) and the tasks behind them all run; after a warm stop nothing is left leased.
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

BAD = [
    ("priority", "'high'"),
    ("priority", "1e300"),
    ("body", "'text'"),
    ("headers", "CAST(x'7bff7d' AS TEXT)"),
    ("deliveries", "1.5"),
    ("lease_until", "'soon'"),
    ("lease_until", "9e999"),
]


def test_bad_rows_are_dead_lettered_and_the_tasks_behind_them_run(
    tmp_path: Path, queue_name: str, ledger: Ledger, workers: Callable[..., Any]
) -> None:
    path = tmp_path / "broker.db"
    url = f"sqlite:///{path}"
    producer = App("relapp", broker=url)
    try:

        async def publish(tags: list[str]) -> None:
            for tag in tags:
                await producer.asend_task("relapp.mark_late", [tag], queue=queue_name)
                ledger.published.append(tag)

        portal.run(publish(["first"]))
        with sqlite3.connect(path) as conn:
            for column, value in BAD:
                conn.execute(
                    "INSERT INTO messages (queue, body, content_type, content_encoding, headers, properties, "
                    "exchange, routing_key, visible_at) SELECT queue, body, content_type, content_encoding, "
                    "headers, properties, exchange, routing_key, visible_at FROM messages LIMIT 1"
                )
                conn.execute(f"UPDATE messages SET {column} = {value} WHERE id = last_insert_rowid()")
        portal.run(publish([f"t{i}" for i in range(20)]))
    finally:
        producer.close()
    worker = workers(url, "", ledger, ["-Q", queue_name, "-P", "threads", "-c", "2"])
    wait_until(lambda: ledger.ran(ledger.published) == len(ledger.published), 30, "every valid task ran")
    lost, _ = ledger.report("sqlite, valid tasks behind malformed rows")
    assert lost == 0
    with sqlite3.connect(path) as conn:
        wait_until(lambda: conn.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == len(BAD), 15, "dead")
        reasons = [row[0] for row in conn.execute("SELECT reason FROM dead_letters ORDER BY message_id")]
    print("[bad-rows] dead-letter reasons:", reasons)
    assert all(reason.startswith("malformed row: ") for reason in reasons), reasons
    assert worker.proc.poll() is None, worker.output[-3000:]
    assert "Consumer crashed" not in worker.output and "Traceback" not in worker.output, worker.output[-3000:]
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    time.sleep(0.1)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(lease_owner) FROM messages").fetchone() == (0, 0)
