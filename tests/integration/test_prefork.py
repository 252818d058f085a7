"""``-P prefork`` in real worker processes on Redis: bodies run in children, on both cores; children that die
mid-body fail their task with WorkerLostError (or requeue it) and are replaced; limits of a child's life."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from procs import HERE, LoggedProcess

from celeriac import App, State

pytestmark = pytest.mark.redis

Start = Callable[..., LoggedProcess]


class PreforkWorker(LoggedProcess):
    """``celeriac -A prefork_app worker -P prefork`` on this test's Redis prefix and queue."""

    def __init__(self, url: str, prefix: str, queue: str, args: Sequence[str], env: dict[str, str]) -> None:
        full_env = {**os.environ, "PYTHONPATH": str(HERE), "CELERIAC_BROKER_URL": url, "TEST_KEYPREFIX": prefix}
        full_env.update(env)
        command = ["-m", "celeriac", "-A", "prefork_app", "worker", "-l", "info", "-Q", queue, "-n", f"{queue}@t"]
        super().__init__([sys.executable, *command, *args], HERE, full_env)


@pytest.fixture
def client(redis_url: str, prefix: str, queue_name: str) -> Iterator[App]:
    app = App("client", broker=redis_url, backend=redis_url)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    app.conf.task_default_queue = queue_name
    yield app
    app.close()


@pytest.fixture
def start(redis_url: str, prefix: str, queue_name: str) -> Iterator[Start]:
    started: list[LoggedProcess] = []

    def launch(*args: str, env: dict[str, str] | None = None, pool: str = "prefork") -> LoggedProcess:
        worker = PreforkWorker(redis_url, prefix, queue_name, ["-P", pool, *args], env or {})
        started.append(worker)
        worker.wait_for_output("ready.")
        return worker

    yield launch
    for worker in started:
        worker.stop()


def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Poll ``condition`` until it holds; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)


def run(client: App, name: str, *args: Any, timeout: float = 30, **options: Any) -> Any:
    return client.send_task(f"prefork_app.{name}", args, **options).get(timeout=timeout)


def meta_of(client: App, name: str, *args: Any, **options: Any) -> dict[str, Any]:
    result = client.send_task(f"prefork_app.{name}", args, **options)
    result.get(timeout=30, propagate=False)
    return dict(result.meta)


def stats(client: App, queue: str) -> dict[str, Any]:
    replies = client.control.inspect(destination=[f"{queue}@t"], timeout=5).stats()
    return dict(replies[f"{queue}@t"])


def test_cpu_bound_bodies_run_in_two_children_at_once(client: App, start: Start, tmp_path: Path) -> None:
    worker = start("-c", "2")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    results = [client.send_task("prefork_app.burn", (str(barrier), 2)) for _ in range(2)]
    outcomes = [result.get(timeout=60) for result in results]
    pids = {pid for pid, _, _ in outcomes}
    assert len(pids) == 2 and worker.proc.pid not in pids  # both ran at once, each in its own child
    assert all(cpu > 0 for _, _, cpu in outcomes)
    assert run(client, "apid") in pids  # async bodies run in the children too


def test_a_child_that_dies_mid_body_fails_its_task_and_is_replaced(client: App, start: Start, queue_name: str) -> None:
    start("-c", "2")
    before = set(stats(client, queue_name)["pool"]["processes"])
    for task in ("exit_child", "kill_child", "segfault"):
        meta = meta_of(client, task)
        assert meta["status"] == State.FAILURE, task
        assert meta["result"]["exc_type"] == "WorkerLostError"
        assert meta["result"]["exc_module"] == "billiard.exceptions"
    assert "SIGKILL" in str(meta_of(client, "kill_child")["result"]["exc_message"])
    assert "SIGSEGV" in str(meta_of(client, "segfault")["result"]["exc_message"])
    assert run(client, "pid") > 0  # the worker keeps serving
    until(lambda: len(stats(client, queue_name)["pool"]["processes"]) == 2, timeout=15)
    assert not before & set(stats(client, queue_name)["pool"]["processes"])  # all replaced


def test_hard_limit_kills_the_child_and_soft_limit_is_raised_in_it(client: App, start: Start) -> None:
    start("-c", "1")
    first = run(client, "pid")
    meta = meta_of(client, "hang", 30, time_limit=1)
    assert meta["status"] == State.FAILURE
    assert (meta["result"]["exc_type"], meta["result"]["exc_module"]) == ("TimeLimitExceeded", "billiard.exceptions")
    assert run(client, "pid") != first  # killed and replaced
    assert run(client, "soft_sleep", 30, soft_time_limit=0.5) == "cleaned up"
    assert run(client, "asoft_sleep", 30, soft_time_limit=0.5) == "cleaned up"
    meta = meta_of(client, "spin", 30, soft_time_limit=0.3)  # does not catch it
    assert meta["result"]["exc_type"] == "SoftTimeLimitExceeded"


def test_worker_time_limit_flags(client: App, start: Start, queue_name: str) -> None:
    start("-c", "1", "--soft-time-limit", "0.5", "--time-limit", "20")
    assert run(client, "soft_sleep", 30) == "cleaned up"
    assert stats(client, queue_name)["pool"]["timeouts"] == [0.5, 20.0]


def test_revoke_terminate_signals_the_child(client: App, start: Start, tmp_path: Path) -> None:
    start("-c", "1")
    result = client.send_task("prefork_app.wait_for_file", (str(tmp_path / "never"), 60))
    until(lambda: any(client.control.inspect(timeout=1).active().values()))
    client.control.revoke(result.id, terminate=True, signal="SIGKILL")
    with pytest.raises(Exception, match="terminated"):
        result.get(timeout=15)
    assert run(client, "pid") > 0


def test_max_tasks_per_child_replaces_the_child(client: App, start: Start, queue_name: str) -> None:
    start("-c", "1", "--max-tasks-per-child", "2")
    pids = [run(client, "pid") for _ in range(4)]
    assert pids[0] == pids[1] != pids[2] == pids[3]
    assert stats(client, queue_name)["pool"]["max-tasks-per-child"] == 2


def test_max_memory_per_child_replaces_a_grown_child(client: App, start: Start) -> None:
    start("-c", "1", "--max-memory-per-child", "250000")  # KiB; a child starts far below
    first = run(client, "hog", 300)
    assert run(client, "pid") != first


def test_a_child_starting_above_the_memory_limit_is_not_recycled(client: App, start: Start) -> None:
    worker = start("-c", "1", "--max-memory-per-child", "1000")
    pids = {run(client, "pid") for _ in range(3)}
    assert len(pids) == 1
    assert worker.output.count("not recycled for memory") == 1


def test_reject_on_worker_lost_requeues_until_the_delivery_cap(
    client: App, start: Start, tmp_path: Path, redis_url: str, prefix: str, queue_name: str
) -> None:
    ledger = tmp_path / "ledger"
    start("-c", "1", env={"TEST_LEDGER": str(ledger), "TEST_MAX_DELIVERIES": "3"})
    client.send_task("prefork_app.lost_late")
    raw = redis.Redis.from_url(redis_url)
    try:
        until(lambda: raw.llen(f"{prefix}{queue_name}.dead") == 1, timeout=30)
    finally:
        raw.close()
    runs = ledger.read_text().split()
    assert len(runs) == 3 and len(set(runs)) == 3  # one child lost per delivery
    assert run(client, "pid") > 0


def test_inspect_stats_reports_the_children(client: App, start: Start, queue_name: str) -> None:
    worker = start("-c", "2")
    pids = {run(client, "pid") for _ in range(4)}
    pool = stats(client, queue_name)["pool"]
    assert pool["implementation"] == "celeriac.pools.prefork.pool:PreforkPool"
    assert pool["max-concurrency"] == 2 and len(pool["processes"]) == 2
    assert pids <= set(pool["processes"]) and worker.proc.pid not in pool["processes"]
    assert pool["max-tasks-per-child"] == "N/A"
    assert pool["writes"]["total"] >= 4 and pool["writes"]["strategy"] == "fair"


def test_spawned_children_import_the_tasks(client: App, start: Start) -> None:
    worker = start("-c", "1", env={"TEST_START_METHOD": "spawn"})
    pid = run(client, "pid", timeout=60)
    assert pid != worker.proc.pid and run(client, "apid") == pid


def test_pool_grow_and_shrink_start_and_retire_children(client: App, start: Start, queue_name: str) -> None:
    start("-c", "1")
    node = [f"{queue_name}@t"]

    def children() -> int:
        return len(stats(client, queue_name)["pool"]["processes"])

    client.control.pool_grow(2, destination=node, reply=True)
    until(lambda: children() == 3)
    assert stats(client, queue_name)["pool"]["max-concurrency"] == 3
    client.control.pool_shrink(2, destination=node, reply=True)
    until(lambda: children() == 1)
    assert run(client, "pid") > 0


def _gone(pid: int) -> bool:
    """The process has exited (a zombie not reaped by whoever adopted it counts as gone)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            return any(line.startswith("State:") and "Z" in line for line in handle)
    except FileNotFoundError:
        return True


def test_children_exit_when_the_worker_is_killed(client: App, start: Start, queue_name: str) -> None:
    worker = start("-c", "2")
    children = stats(client, queue_name)["pool"]["processes"]
    worker.kill()  # SIGKILL: no shutdown runs; each child sees its socket close
    until(lambda: all(_gone(pid) for pid in children))
