"""A worker whose SQLite broker file is deleted under it says so, once, naming the file, and works on.

Issue 10, item 6: the worker kept its connection to the deleted file, alive and deaf, with no log line; tasks sent
to the path (a new file) never ran. Now the broker compares the file's inode with the one it opened (at most once
a second); a change is a lost connection: one error naming the path, the stale WAL files of the lost file are
removed (applied to a new file at that path they would corrupt it), and the worker reconnects to the file now
at the path, where the new tasks run.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celeriac import App
from celeriac._portal import portal

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relkit import Ledger, wait_until


def send(url: str, queue: str, ledger: Ledger, tags: list[str]) -> None:
    producer = App("relapp", broker=url)
    try:

        async def publish() -> None:
            for tag in tags:
                await producer.asend_task("relapp.mark_late", [tag], queue=queue)
                ledger.published.append(tag)

        portal.run(publish())
    finally:
        producer.close()


def test_a_deleted_broker_file_is_reported_once_and_the_worker_works_on(
    tmp_path: Path, queue_name: str, ledger: Ledger, workers: Callable[..., Any]
) -> None:
    path = tmp_path / "broker.db"
    url = f"sqlite:///{path}"
    send(url, queue_name, ledger, ["before"])
    worker = workers(url, "", ledger, ["-Q", queue_name, "-P", "threads", "-c", "2"])
    wait_until(lambda: ledger.ran(["before"]) == 1, 30, "the first task ran")
    os.unlink(path)
    worker.wait_for_output(f"{path}: the database file was deleted", timeout=10)
    time.sleep(1.0)  # the worker reconnects (backoff 0.2 s) and recreates the file
    send(url, queue_name, ledger, ["after-1", "after-2"])
    wait_until(lambda: ledger.ran(["after-1", "after-2"]) == 2, 30, "tasks sent to the new file ran")
    lost, _ = ledger.report("sqlite, broker file deleted under a running worker")
    assert lost == 0
    assert worker.output.count("the database file was deleted under this process") == 1, worker.output[-3000:]
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
