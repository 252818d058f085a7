"""The Redis broker's delivery guarantees with real worker processes (GitHub issue 3).

* workers SIGKILLed in the middle of 2,000 ``acks_late`` tasks: every task completes (at least once);
* a task running 3.5 times the visibility timeout runs once while another worker consumes too (live workers renew
  their deliveries), and runs again when renewal is too slow (the control case: kombu's behaviour);
* a poison message that kills every worker running it is dead-lettered to ``<queue>.dead`` after
  ``broker_max_deliveries`` deliveries, while the other tasks keep flowing;
* a consumer that ends, and a worker that stops, leave nothing running behind them.

Workers run ``taskapp`` with ``TEST_KEYPREFIX`` (a prefix unique to the test for broker and result keys, all
deleted afterwards) and ``TEST_LEDGER`` (a file each run of a task appends to: it counts runs across processes).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis

from celeriac import App
from celeriac.protocol.message import Message
from celeriac.transports.base import TransportOptions
from celeriac.transports.redis.transport import RedisTransport

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import WorkerProcess

pytestmark = pytest.mark.redis


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


class Ledger:
    """The lines tasks append to ``path`` (``start <tag>``, ``done <tag>``), counted."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def count(self, kind: str) -> Counter[str]:
        """How many times each tag has a line of ``kind`` ("start" or "done")."""
        return Counter(line.split()[1] for line in self.lines() if line.startswith(kind + " "))


@pytest.fixture
def raw(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def producer(redis_url: str, prefix: str) -> Iterator[App]:
    app = App("taskapp", broker=redis_url)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    yield app
    app.close()


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger")


def start_worker(
    url: str, prefix: str, queue: str, ledger: Ledger, env: dict[str, str], args: Sequence[str] = ()
) -> WorkerProcess:
    # A killed worker may die holding the restore lock: let the lock expire after 2 s instead of 60.
    full_env = {"TEST_KEYPREFIX": prefix, "TEST_LEDGER": str(ledger.path), "TEST_MUTEX_EXPIRE": "2", **env}
    return WorkerProcess(url, ["-Q", queue, "-P", "threads", *args], env=full_env)


def stop_all(workers: Sequence[WorkerProcess]) -> list[int]:
    """Warm shutdown of the live ones (SIGKILL if one does not exit in time); exit codes of all."""
    for worker in workers:
        if worker.proc.poll() is None:
            worker.signal(signal.SIGTERM)
    codes = []
    for worker in workers:
        try:
            codes.append(worker.wait(timeout=30))
        except subprocess.TimeoutExpired:
            worker.kill()
            codes.append(worker.wait())
    return codes


def send(app: App, queue: str, name: str, *args: object) -> str:
    return app.send_task(f"taskapp.{name}", list(args), queue=queue).id


# -- SIGKILL under load ----------------------------------------------------------------------------------------


def test_sigkill_three_times_under_acks_late_load_loses_nothing(
    redis_url: str, prefix: str, queue_name: str, producer: App, raw: redis.Redis, ledger: Ledger
) -> None:
    total = 2000
    env = {"TEST_VISIBILITY": "2"}  # a dead worker's deliveries come back 2 s after its last renewal
    tags = [f"t{i}" for i in range(total)]
    ids = [send(producer, queue_name, "slow_late", tag, 0.002) for tag in tags]
    workers: list[WorkerProcess] = []
    stranded = []  # deliveries the killed worker held, left in `unacked` for the restore
    try:
        for threshold in (300, 800, 1300):
            worker = start_worker(redis_url, prefix, queue_name, ledger, env, ["-c", "8"])
            workers.append(worker)
            wait_until(lambda n=threshold: len(ledger.count("done")) >= n, 40, f"{threshold} tasks done")
            worker.signal(signal.SIGKILL)
            assert worker.wait() == -signal.SIGKILL
            stranded.append(raw.hlen(prefix + "unacked"))
        workers.append(start_worker(redis_url, prefix, queue_name, ledger, env, ["-c", "8"]))
        wait_until(lambda: len(ledger.count("done")) == total, 40, "every task done")
        # Results are stored before the ack (acks_late): every one reads back.
        assert [producer.AsyncResult(i).get(timeout=10) for i in ids] == tags
        wait_until(lambda: raw.hlen(prefix + "unacked") == 0, 10, "every delivery acked")
    finally:
        codes = stop_all(workers)
    assert codes[-1] == 0, workers[-1].output
    assert all(count > 0 for count in stranded), stranded  # each kill left deliveries to restore

    done = ledger.count("done")
    starts = ledger.count("start")
    assert set(done) == set(tags)  # none lost
    duplicates = {tag: n for tag, n in done.items() if n > 1}
    print(
        f"\n{total} acks_late tasks, 3 SIGKILLs: deliveries stranded per kill {stranded}, runs started "
        f"{starts.total()}, completed {done.total()}, completed more than once: {len(duplicates)} {duplicates}"
    )


# -- long tasks and renewal ------------------------------------------------------------------------------------


def run_long_task(
    redis_url: str,
    prefix: str,
    queue: str,
    producer: App,
    ledger: Ledger,
    env: dict[str, str],
    workers: list[WorkerProcess],
) -> None:
    """Two workers (appended to ``workers``) consume ``queue``; one runs slow_late('long', 3.5), visibility 1 s."""
    env = {"TEST_VISIBILITY": "1", **env}
    for i in range(2):
        workers.append(start_worker(redis_url, prefix, queue, ledger, env, ["-c", "2", "-n", f"w{i}@%h"]))
    for worker in workers:
        worker.wait_for_output("ready.")
    task_id = send(producer, queue, "slow_late", "long", 3.5)
    # Both workers keep consuming while it runs (the other one, and a free slot of the same one, are idle).
    quick = [send(producer, queue, "slow_late", f"quick{i}", 0.0) for i in range(20)]
    assert [producer.AsyncResult(i).get(timeout=20) for i in quick] == [f"quick{i}" for i in range(20)]
    assert producer.AsyncResult(task_id).get(timeout=30) == "long"


def test_task_three_times_the_visibility_timeout_runs_once(
    redis_url: str, prefix: str, queue_name: str, producer: App, raw: redis.Redis, ledger: Ledger
) -> None:
    workers: list[WorkerProcess] = []
    try:
        run_long_task(redis_url, prefix, queue_name, producer, ledger, {}, workers)
        wait_until(lambda: raw.hlen(prefix + "unacked") == 0, 10, "every delivery acked")
        assert raw.llen(prefix + queue_name) == 0  # nothing restored, waiting to run again
    finally:
        codes = stop_all(workers)
    assert codes == [0, 0], "".join(worker.output for worker in workers)
    assert ledger.count("start")["long"] == 1
    assert ledger.count("done")["long"] == 1


def test_without_timely_renewal_a_long_task_runs_again(
    redis_url: str, prefix: str, queue_name: str, producer: App, ledger: Ledger
) -> None:
    """The control case of the test above: renewing every 30 s is too late, so the restore hands it out again."""
    workers: list[WorkerProcess] = []
    try:
        run_long_task(redis_url, prefix, queue_name, producer, ledger, {"TEST_RENEW_INTERVAL": "30"}, workers)
        wait_until(lambda: ledger.count("start")["long"] >= 2, 10, "the long task started again")
    finally:
        for worker in workers:
            worker.kill()  # no need to wait for the extra runs


# -- a poison message ------------------------------------------------------------------------------------------

POISON_ENV = {"TEST_VISIBILITY": "1", "TEST_MAX_DELIVERIES": "2"}


def run_until_dead_lettered(
    redis_url: str, prefix: str, queue: str, ledger: Ledger, poison_id: str, args: Sequence[str]
) -> list[WorkerProcess]:
    """Start a worker, and a new one each time the poison kills the last, until one dead-letters the poison."""
    dead_line = f"task {poison_id} from queue {queue!r} moved to dead-letter list"
    workers = [start_worker(redis_url, prefix, queue, ledger, POISON_ENV, args)]
    try:
        deadline = time.monotonic() + 40
        while dead_line not in workers[-1].output:
            if workers[-1].proc.poll() is not None:  # the poison killed it: start the next one
                assert len(workers) <= 2, f"the poison killed {len(workers)} workers (max_deliveries=2)"
                workers.append(start_worker(redis_url, prefix, queue, ledger, POISON_ENV, args))
            assert time.monotonic() < deadline, "no dead-letter log line within 40s:\n" + workers[-1].output
            time.sleep(0.02)
    except BaseException:
        stop_all(workers)
        raise
    return workers


def dead_letters(raw: redis.Redis, prefix: str, queue: str) -> list[dict[str, Any]]:
    return [json.loads(message) for message in raw.lrange(f"{prefix}{queue}.dead", 0, -1)]


def test_poison_message_is_dead_lettered_and_other_tasks_flow(
    redis_url: str, prefix: str, queue_name: str, producer: App, raw: redis.Redis, ledger: Ledger
) -> None:
    before = [send(producer, queue_name, "slow_late", f"a{i}", 0.01) for i in range(30)]
    poison_id = send(producer, queue_name, "poison")
    after = [send(producer, queue_name, "slow_late", f"b{i}", 0.01) for i in range(30)]
    # One task in flight at a time: the poison is alone in the worker it kills.
    args = ["-c", "1", "--prefetch-multiplier", "1"]
    workers = run_until_dead_lettered(redis_url, prefix, queue_name, ledger, poison_id, args)
    try:
        expected = [f"a{i}" for i in range(30)] + [f"b{i}" for i in range(30)]
        assert [producer.AsyncResult(i).get(timeout=20) for i in before + after] == expected
        wait_until(lambda: raw.hlen(prefix + "unacked") == 0, 10, "every delivery acked")
    finally:
        codes = stop_all(workers)
    assert codes == [-signal.SIGKILL, -signal.SIGKILL, 0], [worker.output for worker in workers]
    assert ledger.count("start")["poison"] == 2  # delivered (and run) exactly max_deliveries times
    line = f"task {poison_id} from queue {queue_name!r} moved to dead-letter list {prefix + queue_name + '.dead'!r}"
    assert f"{line} after 2 deliveries (max_deliveries=2)" in workers[-1].output
    dead = dead_letters(raw, prefix, queue_name)
    assert [message["headers"]["id"] for message in dead] == [poison_id]  # nothing else
    assert dead[0]["headers"]["task"] == "taskapp.poison"  # the kombu envelope, as published
    assert producer.AsyncResult(poison_id).state == "PENDING"
    assert raw.llen(prefix + queue_name) == 0


def test_poison_bystanders_are_dead_lettered_or_done_never_lost(
    redis_url: str, prefix: str, queue_name: str, producer: App, raw: redis.Redis, ledger: Ledger
) -> None:
    """With a wide prefetch window, tasks fetched together with the poison are restored together, fetched together
    again and reach max_deliveries with it: each task then ends done or dead-lettered, none lost."""
    tasks = {send(producer, queue_name, "slow_late", f"a{i}", 0.01): f"a{i}" for i in range(30)}
    poison_id = send(producer, queue_name, "poison")
    tasks |= {send(producer, queue_name, "slow_late", f"b{i}", 0.01): f"b{i}" for i in range(30)}
    workers = run_until_dead_lettered(redis_url, prefix, queue_name, ledger, poison_id, ["-c", "4"])
    try:
        dead_ids = {message["headers"]["id"] for message in dead_letters(raw, prefix, queue_name)}
        assert poison_id in dead_ids
        for task_id, tag in tasks.items():
            if task_id not in dead_ids:
                assert producer.AsyncResult(task_id).get(timeout=20) == tag
        wait_until(lambda: raw.hlen(prefix + "unacked") == 0, 10, "every delivery acked")
    finally:
        codes = stop_all(workers)
    assert codes[-1] == 0, workers[-1].output
    bystanders = sorted(tasks[i] for i in dead_ids - {poison_id})
    print(f"\npoison with prefetch 16: dead-lettered with it: {len(bystanders)} {bystanders}")


# -- consumers that end leave nothing running ------------------------------------------------------------------


async def test_a_cancelled_consumer_leaves_no_task_running(redis_url: str, prefix: str, queue_name: str) -> None:
    """A consumer that is cancelled with nothing in flight stops its renewal loop at once, instead of leaving it
    asleep for ``renew_interval`` (20 minutes by default): each remote-control request (``inspect``, mingle)
    consumes its reply queue with a consumer of its own."""
    transport = RedisTransport(redis_url, TransportOptions(extra={"global_keyprefix": prefix}))
    try:
        await transport.connect()
        before = asyncio.all_tasks()
        await transport.publish(Message(body=b"[]"), routing_key=queue_name)
        consumer = transport.consume([queue_name], prefetch=1)
        delivery = await asyncio.wait_for(consumer.__anext__(), timeout=10)  # the list is not empty: no waiting
        await delivery.ack()
        await consumer.cancel()
        # (The transport's restorer is not the consumer's: it runs until the transport closes.)
        started = {task for task in asyncio.all_tasks() - before if task.get_name() != "celeriac-redis-restore"}
        _, running = await asyncio.wait(started, timeout=2) if started else (set(), set())
        assert not running, [task.get_name() for task in running]
    finally:
        await transport.close()


def test_worker_exits_promptly_after_a_warm_shutdown(
    redis_url: str, prefix: str, queue_name: str, producer: App, ledger: Ledger
) -> None:
    """SIGTERM right after the queue drained, while the consumer's idle waits (BLMOVE) are connecting: the process
    ends without waiting for a blocking wait to time out. (It used to take block_timeout in about one round out of
    three: the cancel of a wait was lost in redis-py's connection set-up, and closing the transport broke the wait's
    connection only for redis-py to send it again.) Several rounds, as the window is a few milliseconds wide. The
    waits here last 60 s, so that bug shows as a lag of a minute, far from any lag a busy machine causes."""
    lags = []
    for round_ in range(6):
        queue = f"{queue_name}-{round_}"
        ids = [
            producer.send_task("taskapp.slow_late", [f"r{round_}-{i}", 0.0], queue=queue, priority=9 * (i % 2)).id
            for i in range(4)
        ]
        args = ["-P", "solo", "--prefetch-multiplier", "1", "--without-mingle"]
        worker = start_worker(redis_url, prefix, queue, ledger, {"TEST_BLOCK_TIMEOUT": "60"}, args)
        try:
            assert [producer.AsyncResult(i).get(timeout=20) for i in ids] == [f"r{round_}-{i}" for i in range(4)]
            worker.signal(signal.SIGTERM)
            worker.wait_for_output("stopped.")
            stopped = time.monotonic()
            assert worker.wait(timeout=90) == 0, worker.output
            lags.append(round(time.monotonic() - stopped, 2))
        finally:
            worker.kill()
    assert max(lags) < 30.0, f"seconds from 'stopped.' to exit, per round (a wait lasts 60 s): {lags}"
