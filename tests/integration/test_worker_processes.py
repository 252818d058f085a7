"""Real worker processes on the embedded SQLite broker: shutdown signals, SIGKILL with acks_late, many processes."""

from __future__ import annotations

import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import App

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import WorkerProcess


@pytest.fixture
def producer(sqlite_url: str) -> Iterator[App]:
    app = App("taskapp", broker=sqlite_url)
    yield app
    app.close()


def send(app: App, name: str, *args: object, **options: object) -> str:
    return app.send_task(f"taskapp.{name}", list(args), **options).id  # type: ignore[arg-type]


def wait_until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def queue_size(app: App, queue: str = "celery") -> int:
    from celeriac._portal import portal

    async def size() -> int:
        transport = await app.atransport()
        return await transport.size(queue)

    return portal.run(size())


def test_warm_shutdown_finishes_running_and_returns_reserved(sqlite_url: str, producer: App, tmp_path: Path) -> None:
    release = tmp_path / "release"
    worker = WorkerProcess(sqlite_url, ["-c", "1", "--prefetch-multiplier", "4"])
    try:
        worker.wait_for_output("ready.")
        running = send(producer, "wait_for_file", str(release))
        queued = [send(producer, "add", i, i) for i in range(3)]
        for task_id in [running, *queued]:
            worker.wait_for_output(f"[{task_id}] received")  # prefetched; only the first one runs (-c 1)
        worker.signal(signal.SIGTERM)
        worker.wait_for_output("Warm shutdown")
        release.touch()
        assert worker.wait() == 0
    finally:
        worker.kill()
    assert producer.AsyncResult(running).get(timeout=5) == "released"
    # The reserved-but-unstarted tasks went back to the queue: a new worker runs them.
    assert queue_size(producer) == 3
    assert all(producer.AsyncResult(q).state == "PENDING" for q in queued)
    second = WorkerProcess(sqlite_url)
    try:
        assert [producer.AsyncResult(q).get(timeout=30) for q in queued] == [0, 2, 4]
    finally:
        second.signal(signal.SIGTERM)
        second.wait()


def test_second_signal_is_a_cold_shutdown_and_acks_late_tasks_come_back(
    sqlite_url: str, producer: App, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    never = tmp_path / "never-created"
    worker = WorkerProcess(sqlite_url, ["-c", "2"], env={"TEST_LEDGER": str(ledger)})
    try:
        worker.wait_for_output("ready.")
        task_id = send(producer, "wait_for_file_late", str(never), 120)
        wait_until(lambda: ledger.exists() and "start" in ledger.read_text())
        worker.signal(signal.SIGTERM)
        worker.wait_for_output("Warm shutdown")
        worker.signal(signal.SIGTERM)
        worker.wait_for_output("Cold shutdown")
        worker.wait(timeout=30)
    finally:
        worker.kill()
    # acks_late + cold shutdown: the message is back in the queue at once, not lost.
    assert queue_size(producer) == 1
    assert producer.AsyncResult(task_id).state == "PENDING"


def test_sigkill_with_acks_late_loses_nothing(sqlite_url: str, producer: App, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    env = {"TEST_LEDGER": str(ledger), "TEST_VISIBILITY": "1"}
    ids = [send(producer, "slow_late", f"t{i}", 0.05) for i in range(40)]
    first = WorkerProcess(sqlite_url, ["-c", "4", "-P", "threads"], env=env)
    try:
        wait_until(lambda: ledger.exists() and ledger.read_text().count("done") >= 5)
        first.proc.send_signal(signal.SIGKILL)  # mid-run: several tasks started, not acked
        first.wait()
    finally:
        first.kill()
    second = WorkerProcess(sqlite_url, ["-c", "4", "-P", "threads"], env=env)
    try:
        results = [producer.AsyncResult(i).get(timeout=60) for i in ids]
    finally:
        second.signal(signal.SIGTERM)
        second.wait()
    assert results == [f"t{i}" for i in range(40)]
    done = Counter(line.split()[1] for line in ledger.read_text().splitlines() if line.startswith("done"))
    assert set(done) == {f"t{i}" for i in range(40)}  # every task completed at least once


def test_two_worker_processes_share_one_database(sqlite_url: str, producer: App) -> None:
    workers = [WorkerProcess(sqlite_url, ["-n", f"w{i}@%h", "-c", "4"]) for i in range(2)]
    try:
        for worker in workers:
            worker.wait_for_output("ready.")
        ids = [send(producer, "add", i, 1) for i in range(200)]
        assert [producer.AsyncResult(i).get(timeout=60) for i in ids] == [i + 1 for i in range(200)]
    finally:
        for worker in workers:
            worker.signal(signal.SIGTERM)
        codes = [worker.wait() for worker in workers]
    assert codes == [0, 0]
