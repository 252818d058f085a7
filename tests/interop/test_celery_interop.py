# Celery has no type hints; calling it is the point of this module.
# mypy: disallow-untyped-calls=False, disallow-untyped-decorators=False
"""Real Celery 5.7 and real celeriac worker processes sharing one Redis database (GitHub issue 3).

* a Celery client's tasks run on a ``celeriac`` worker, and the Celery client reads their results;
* a celeriac client's tasks run on a ``celery`` worker (solo and threads pools), read back by celeriac;
* a celeriac worker and a Celery worker consume one queue at once: every task runs exactly once.

Every process (clients and workers) uses the same ``global_keyprefix`` for broker and results, unique per test,
so a test sees only its own keys; they are all deleted afterwards. Nothing waits on the clock: results are
waited for with ``get(timeout=...)``, processes with their log lines.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from celery import Celery  # type: ignore[import-untyped]
from celery.exceptions import TaskRevokedError  # type: ignore[import-untyped]

from celeriac import App, errors

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from procs import LoggedProcess, WorkerProcess

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.redis

UTC = dt.UTC


class CeleryWorker(LoggedProcess):
    """A ``celery -A celery_taskapp worker`` subprocess whose log (stderr) is collected in ``output``."""

    def __init__(self, url: str, prefix: str, queue: str, args: Sequence[str] = (), ledger: Path | None = None):
        env = {
            **os.environ,
            "PYTHONPATH": str(HERE),
            "TEST_BROKER_URL": url,
            "TEST_KEYPREFIX": prefix,
            "TEST_LEDGER": str(ledger or ""),
        }
        command = [sys.executable, "-m", "celery", "-A", "celery_taskapp", "worker", "-l", "info", "-Q", queue]
        command += ["-n", f"celery-{queue}@%h", "--without-mingle", "--without-gossip", "--without-heartbeat", *args]
        super().__init__(command, HERE, env)


def start_celeriac_worker(
    url: str, prefix: str, queues: str, args: Sequence[str] = (), ledger: Path | None = None
) -> WorkerProcess:
    env = {"TEST_KEYPREFIX": prefix, "TEST_LEDGER": str(ledger or "")}
    return WorkerProcess(url, ["-Q", queues, "-n", f"celeriac-{queues}@%h", *args], env=env)


def ledger_lines(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


@pytest.fixture
def celery_client(redis_url: str, prefix: str, queue_name: str) -> Iterator[Celery]:
    """A Celery client app whose tasks (stubs named like taskapp's) go to ``queue_name`` by default."""
    app = Celery("client", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue_name,
    )

    def stub(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("runs on a worker, never here")

    for name in ("add", "fail", "mark"):
        app.task(name=f"taskapp.{name}", shared=False)(stub)
    yield app
    app.close()


@pytest.fixture
def celeriac_client(redis_url: str, prefix: str) -> Iterator[App]:
    app = App("client", broker=redis_url)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    yield app
    app.close()


# -- a Celery client, a celeriac worker ------------------------------------------------------------------------


def test_celery_client_celeriac_worker_values_and_options(
    redis_url: str, prefix: str, queue_name: str, celery_client: Celery
) -> None:
    other = f"{queue_name}-other"
    worker = start_celeriac_worker(redis_url, prefix, f"{queue_name},{other}")
    try:
        worker.wait_for_output("ready.")
        add = celery_client.tasks["taskapp.add"]
        assert add.delay(2, 3).get(timeout=20) == 5
        assert add.apply_async((1,), {"y": 2}).get(timeout=20) == 3
        assert celery_client.send_task("taskapp.add", kwargs={"x": 4, "y": 5}, queue=queue_name).get(timeout=20) == 9
        assert add.apply_async((1, 1), queue=other).get(timeout=20) == 2  # a second queue of the same worker
        assert add.apply_async((3, 3), priority=9).get(timeout=20) == 6  # lands in the list "<queue>\x06\x169"

        sent = dt.datetime.now(UTC)
        by_countdown = add.apply_async((10, 1), countdown=1)
        by_eta = add.apply_async((10, 2), eta=sent + dt.timedelta(seconds=1.5))
        assert by_countdown.get(timeout=20) == 11
        assert by_eta.get(timeout=20) == 12
        # Not run before it was due (the worker's clock is this machine's clock; 10 ms of rounding allowed).
        slack = dt.timedelta(milliseconds=10)
        assert by_countdown.date_done >= sent + dt.timedelta(seconds=1) - slack
        assert by_eta.date_done >= sent + dt.timedelta(seconds=1.5) - slack

        expired = add.apply_async((1, 2), expires=dt.datetime.now(UTC) - dt.timedelta(seconds=1))
        with pytest.raises(TaskRevokedError, match="expired"):
            expired.get(timeout=20)
        assert expired.state == "REVOKED"
        unexpired = add.apply_async((1, 3), expires=60)
        assert unexpired.get(timeout=20) == 4
    finally:
        code = worker.stop()
    assert code == 0, worker.output


def test_celery_client_reads_a_celeriac_workers_exception(
    redis_url: str, prefix: str, queue_name: str, celery_client: Celery
) -> None:
    worker = start_celeriac_worker(redis_url, prefix, queue_name)
    try:
        worker.wait_for_output("ready.")
        result = celery_client.tasks["taskapp.fail"].delay("kaboom")
        with pytest.raises(ValueError, match="kaboom") as caught:
            result.get(timeout=20)
        assert type(caught.value) is ValueError
        assert result.state == "FAILURE"
        assert "ValueError: kaboom" in result.traceback
        # propagate=False returns the exception instead
        assert repr(result.get(timeout=5, propagate=False)) == "ValueError('kaboom')"
    finally:
        code = worker.stop()
    assert code == 0, worker.output


def test_celery_priorities_are_served_lowest_first_by_a_celeriac_worker(
    redis_url: str, prefix: str, queue_name: str, celery_client: Celery, tmp_path: Path
) -> None:
    """celery-wire.md §2.2/§8.2: on Redis, priority 0 is served before 9, whoever published."""
    ledger = tmp_path / "ledger"
    mark = celery_client.tasks["taskapp.mark"]
    results = []
    for i in range(3):  # published before any worker runs, interleaved
        results.append(mark.apply_async((f"low{i}",), priority=9))
        results.append(mark.apply_async((f"high{i}",), priority=0))
    worker = start_celeriac_worker(redis_url, prefix, queue_name, ["-P", "solo", "--prefetch-multiplier", "1"], ledger)
    try:
        assert sorted(r.get(timeout=20) for r in results) == sorted(
            f"{p}{i}" for p in ("low", "high") for i in range(3)
        )
    finally:
        code = worker.stop()
    assert code == 0, worker.output
    order = [line.split()[0] for line in ledger_lines(ledger)]
    assert order == ["high0", "high1", "high2", "low0", "low1", "low2"]


# -- a celeriac client, a Celery worker ------------------------------------------------------------------------


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_celeriac_client_celery_worker(
    redis_url: str, prefix: str, queue_name: str, celeriac_client: App, pool: str
) -> None:
    worker = CeleryWorker(redis_url, prefix, queue_name, ["-P", pool, "-c", "2"])
    try:
        worker.wait_for_output("ready.")
        send = celeriac_client.send_task
        assert send("taskapp.add", [2, 3], queue=queue_name).get(timeout=20) == 5
        assert send("taskapp.add", [1], {"y": 2}, queue=queue_name).get(timeout=20) == 3
        assert send("taskapp.add", [3, 3], queue=queue_name, priority=9).get(timeout=20) == 6

        sent = dt.datetime.now(UTC)
        later = send("taskapp.add", [10, 1], queue=queue_name, countdown=1)
        assert later.get(timeout=20) == 11
        assert dt.datetime.fromisoformat(later.meta["date_done"]) >= sent + dt.timedelta(seconds=1)

        failed = send("taskapp.fail", ["kaboom"], queue=queue_name)
        with pytest.raises(ValueError, match="kaboom") as caught:
            failed.get(timeout=20)
        assert type(caught.value) is ValueError
        assert failed.state == "FAILURE"
        assert "ValueError: kaboom" in (failed.traceback or "")

        expired = send("taskapp.add", [1, 2], queue=queue_name, expires=dt.datetime.now(UTC) - dt.timedelta(seconds=1))
        with pytest.raises(errors.TaskRevokedError, match="expired"):
            expired.get(timeout=20)
        assert expired.state == "REVOKED"
    finally:
        code = worker.stop()
    assert code == 0, worker.output


# -- both workers on one queue ---------------------------------------------------------------------------------


def test_celeriac_and_celery_workers_share_a_queue(
    redis_url: str, prefix: str, queue_name: str, celery_client: Celery, celeriac_client: App, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger"
    celeriac_worker = start_celeriac_worker(redis_url, prefix, queue_name, ["-c", "8"], ledger)
    celery_worker = CeleryWorker(redis_url, prefix, queue_name, ["-P", "threads", "-c", "4"], ledger)
    tags = [f"m{i}-{uuid.uuid4().hex[:6]}" for i in range(500)]
    try:
        celeriac_worker.wait_for_output("ready.")
        celery_worker.wait_for_output("ready.")
        mark = celery_client.tasks["taskapp.mark"]
        ids = []
        for i, tag in enumerate(tags):  # half from each kind of client, interleaved
            if i % 2:
                ids.append(mark.delay(tag).id)
            else:
                ids.append(celeriac_client.send_task("taskapp.mark", [tag], queue=queue_name).id)
        # Every result, whichever worker stored it and whichever client sent it, reads back in celeriac.
        assert [celeriac_client.AsyncResult(i).get(timeout=60) for i in ids] == tags
    finally:
        codes = (celeriac_worker.stop(), celery_worker.stop())
    assert codes == (0, 0), celeriac_worker.output + celery_worker.output

    runs = [line.split() for line in ledger_lines(ledger)]
    per_tag = Counter(tag for tag, _ in runs)
    per_worker = Counter(who for _, who in runs)
    duplicates = {tag: count for tag, count in per_tag.items() if count > 1}
    print(f"\n500 tasks on one queue: runs per worker {dict(per_worker)}, duplicates {duplicates or 'none'}")
    assert set(per_tag) == set(tags), f"lost: {sorted(set(tags) - set(per_tag))}"
    assert not duplicates  # early acks and no failures: exactly once
    assert per_worker["celeriac"] > 0 and per_worker["celery"] > 0, per_worker
