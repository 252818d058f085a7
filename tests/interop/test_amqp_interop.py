# Celery has no type hints; calling it is the point of this module.
# mypy: disallow-untyped-calls=False, disallow-untyped-decorators=False
"""Real Celery 5.7 and real celeriac processes sharing one RabbitMQ (issue 11): a virtual host per test.

* a Celery client's tasks (args, kwargs, countdown, eta, expires, priority, a second queue, a raising task) run on
  a ``celeriac`` worker, results via Redis and via ``rpc://``, on classic and on quorum queues;
* a celeriac client's tasks run on a ``celery`` worker (classic and quorum);
* a celeriac worker and a Celery worker consume one queue at once: every task runs exactly once;
* ``celery inspect ping/stats/active_queues`` and Celery's event receiver against a celeriac worker;
* an expired task (also one held for a countdown past its expiry) is stored REVOKED "expired" and never runs.

Both apps (`amqp_celeriac_app`, `celery_amqp_app`) read the same environment, so every process declares the same
queues with the same arguments. Nothing waits on the clock: results are waited for with ``get(timeout=...)``,
processes with their log lines.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from celery import Celery  # type: ignore[import-untyped]
from celery.exceptions import TaskRevokedError  # type: ignore[import-untyped]

from celeriac import App, errors

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
sys.path.insert(0, str(HERE.parent / "reliability"))
sys.path.insert(0, str(HERE))
from amqp_settings import configure  # noqa: E402
from procs import LoggedProcess  # noqa: E402
from relkit import RabbitVhost, open_vhost, wait_until  # noqa: E402

pytestmark = pytest.mark.amqp

UTC = dt.UTC


def _env(broker: str, results: str, prefix: str, queue_type: str, ledger: Path | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CELERIAC_", "CELERY_"))}
    env.update(
        PYTHONPATH=str(HERE),
        TEST_BROKER_URL=broker,
        TEST_RESULT_URL=results,
        TEST_KEYPREFIX=prefix,
        TEST_QUEUE_TYPE=queue_type,
        TEST_LEDGER=str(ledger or ""),
    )
    return env


class Fleet:
    """One test's RabbitMQ virtual host, result store and queue type, and the processes started on them."""

    def __init__(self, vhost: RabbitVhost, results: str, prefix: str, queue_type: str, tmp: Path) -> None:
        self.vhost = vhost
        self.results = results
        self.prefix = prefix
        self.queue_type = queue_type
        self.ledger = tmp / "ledger"
        self.started: list[LoggedProcess] = []

    def celeriac_worker(self, queues: str, args: Sequence[str] = ()) -> LoggedProcess:
        command = [sys.executable, "-m", "celeriac", "-A", "amqp_celeriac_app", "worker", "-l", "info", "-Q", queues]
        command += ["-n", f"celeriac-{uuid.uuid4().hex[:6]}@%h", *args]
        return self._start(command)

    def celery_worker(self, queues: str, args: Sequence[str] = ()) -> LoggedProcess:
        command = [sys.executable, "-m", "celery", "-A", "celery_amqp_app", "worker", "-l", "info", "-Q", queues]
        command += ["-n", f"celery-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip", *args]
        return self._start(command)

    def _start(self, command: list[str]) -> LoggedProcess:
        env = _env(self.vhost.url, self.results, self.prefix, self.queue_type, self.ledger)
        process = LoggedProcess(command, HERE, env)
        self.started.append(process)
        return process

    def celery_client(self, default_queue: str) -> Celery:
        app = Celery("client", broker=self.vhost.url, backend=self.results, set_as_current=False)
        configure(app, self.queue_type, self.prefix)
        app.conf.task_default_queue = default_queue

        def stub(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("runs on a worker, never here")

        for name in ("add", "fail", "mark"):
            app.task(name=f"taskapp.{name}", shared=False)(stub)
        return app

    def celeriac_client(self) -> App:
        app = App("client", broker=self.vhost.url, backend=self.results)
        app.conf.task_default_queue_type = self.queue_type
        if self.queue_type == "quorum":
            app.conf.task_default_exchange_type = "topic"
            # Celery declares quorum queues with x-queue-type alone: no delivery limit, no <queue>.dead.
            app.conf.task_queue_delivery_limit = 0
        else:
            app.conf.task_queue_max_priority = 10
        if self.prefix:
            app.conf.result_backend_transport_options = {"global_keyprefix": self.prefix}
        return app

    def ledger_lines(self) -> list[list[str]]:
        return [line.split() for line in self.ledger.read_text().splitlines()] if self.ledger.exists() else []

    def stop_all(self) -> list[int]:
        codes = [process.stop() for process in self.started]
        self.started.clear()
        return codes


@pytest.fixture
def fleet_factory(tmp_path: Path, redis_prefix: str) -> Iterator[Any]:
    made: list[tuple[Fleet, RabbitVhost]] = []

    def make(results: str, queue_type: str) -> Fleet:
        vhost = open_vhost("interop")
        fleet = Fleet(vhost, results, redis_prefix if results.startswith("redis") else "", queue_type, tmp_path)
        made.append((fleet, vhost))
        return fleet

    yield make
    for fleet, vhost in made:
        for process in fleet.started:
            process.kill()
        vhost.delete()


def _results_url(kind: str, redis_url: str) -> str:
    return redis_url if kind == "redis" else "rpc://"


# -- a Celery client, a celeriac worker ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("queue_type", "results"), [("classic", "rpc"), ("classic", "redis"), ("quorum", "rpc"), ("quorum", "redis")]
)
def test_celery_client_celeriac_worker(
    fleet_factory: Any, redis_url: str, queue_name: str, queue_type: str, results: str
) -> None:
    fleet: Fleet = fleet_factory(_results_url(results, redis_url), queue_type)
    other = f"{queue_name}-other"
    worker = fleet.celeriac_worker(f"{queue_name},{other}")
    client = fleet.celery_client(queue_name)
    try:
        worker.wait_for_output("ready.")
        add = client.tasks["taskapp.add"]
        assert add.delay(2, 3).get(timeout=20) == 5
        assert add.apply_async((1,), {"y": 2}).get(timeout=20) == 3
        assert client.send_task("taskapp.add", kwargs={"x": 4, "y": 5}, queue=queue_name).get(timeout=20) == 9
        assert add.apply_async((1, 1), queue=other).get(timeout=20) == 2  # the worker's second queue
        assert add.apply_async((3, 3), priority=9).get(timeout=20) == 6

        sent = dt.datetime.now(UTC)
        by_countdown = add.apply_async((10, 1), countdown=1)
        by_eta = add.apply_async((10, 2), eta=sent + dt.timedelta(seconds=1.5))
        assert by_countdown.get(timeout=20) == 11
        assert by_eta.get(timeout=20) == 12
        if results == "redis":  # rpc:// records carry date_done too, but Celery's rpc client drops it on read
            slack = dt.timedelta(milliseconds=10)
            assert by_countdown.date_done >= sent + dt.timedelta(seconds=1) - slack
            assert by_eta.date_done >= sent + dt.timedelta(seconds=1.5) - slack

        failed = client.tasks["taskapp.fail"].delay("kaboom")
        with pytest.raises(ValueError, match="kaboom"):
            failed.get(timeout=20)
        assert failed.state == "FAILURE"

        expired = add.apply_async((1, 2), expires=dt.datetime.now(UTC) - dt.timedelta(seconds=1))
        with pytest.raises(TaskRevokedError, match="expired"):
            expired.get(timeout=20)
        assert expired.state == "REVOKED"
        held = client.tasks["taskapp.mark"].apply_async(("held",), countdown=2, expires=1)  # expires while held
        with pytest.raises(TaskRevokedError, match="expired"):
            held.get(timeout=20)
        assert add.apply_async((1, 3), expires=60).get(timeout=20) == 4
    finally:
        client.close()
        codes = fleet.stop_all()
    assert codes == [0], worker.output
    assert not any(line[0] == "held" for line in fleet.ledger_lines()), "an expired task ran"


# -- a celeriac client, a Celery worker ------------------------------------------------------------------------


@pytest.mark.parametrize(("queue_type", "results"), [("classic", "rpc"), ("quorum", "redis")])
def test_celeriac_client_celery_worker(
    fleet_factory: Any, redis_url: str, queue_name: str, queue_type: str, results: str
) -> None:
    fleet: Fleet = fleet_factory(_results_url(results, redis_url), queue_type)
    worker = fleet.celery_worker(queue_name, ["-P", "threads", "-c", "2"])
    client = fleet.celeriac_client()
    try:
        worker.wait_for_output("ready.")
        send = client.send_task
        assert send("taskapp.add", [2, 3], queue=queue_name).get(timeout=20) == 5
        assert send("taskapp.add", [1], {"y": 2}, queue=queue_name).get(timeout=20) == 3
        assert send("taskapp.add", [3, 3], queue=queue_name, priority=9).get(timeout=20) == 6
        later = send("taskapp.add", [10, 1], queue=queue_name, countdown=1)
        assert later.get(timeout=20) == 11
        failed = send("taskapp.fail", ["kaboom"], queue=queue_name)
        with pytest.raises(ValueError, match="kaboom"):
            failed.get(timeout=20)
        expired = send("taskapp.add", [1, 2], queue=queue_name, expires=dt.datetime.now(UTC) - dt.timedelta(seconds=1))
        with pytest.raises(errors.TaskRevokedError, match="expired"):
            expired.get(timeout=20)
    finally:
        client.close()
        codes = fleet.stop_all()
    assert codes == [0], worker.output


# -- both workers on one queue ---------------------------------------------------------------------------------


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_celeriac_and_celery_workers_share_a_queue(
    fleet_factory: Any, redis_url: str, queue_name: str, queue_type: str
) -> None:
    fleet: Fleet = fleet_factory(redis_url, queue_type)
    celeriac_worker = fleet.celeriac_worker(queue_name, ["-c", "8"])
    celery_worker = fleet.celery_worker(queue_name, ["-P", "threads", "-c", "4"])
    celery_client = fleet.celery_client(queue_name)
    celeriac_client = fleet.celeriac_client()
    tags = [f"m{i}-{uuid.uuid4().hex[:6]}" for i in range(500)]
    try:
        celeriac_worker.wait_for_output("ready.")
        celery_worker.wait_for_output("ready.")
        mark = celery_client.tasks["taskapp.mark"]
        for i, tag in enumerate(tags):  # half from each kind of client, interleaved
            if i % 2:
                mark.delay(tag)
            else:
                celeriac_client.send_task("taskapp.mark", [tag], queue=queue_name)
        wait_until(lambda: len(fleet.ledger_lines()) >= len(tags), 90, "every task ran")
    finally:
        celery_client.close()
        celeriac_client.close()
        codes = fleet.stop_all()
    assert codes == [0, 0], celeriac_worker.output[-3000:] + celery_worker.output[-3000:]
    runs = fleet.ledger_lines()
    per_tag = Counter(tag for tag, _ in runs)
    per_worker = Counter(who for _, who in runs)
    duplicates = {tag: count for tag, count in per_tag.items() if count > 1}
    print(f"\n500 tasks on one {queue_type} queue: runs per worker {dict(per_worker)}, duplicates {duplicates}")
    assert set(per_tag) == set(tags), f"lost: {sorted(set(tags) - set(per_tag))}"
    assert not duplicates
    assert per_worker["celeriac"] > 0 and per_worker["celery"] > 0, per_worker


# -- Celery's monitoring tools against a celeriac worker ------------------------------------------------------


def test_celery_inspect_and_events_see_a_celeriac_worker(fleet_factory: Any, queue_name: str) -> None:
    fleet: Fleet = fleet_factory("rpc://", "classic")
    worker = fleet.celeriac_worker(queue_name, ["-E"])
    env = _env(fleet.vhost.url, "rpc://", "", "classic", None)

    def inspect(*args: str) -> str:
        command = [sys.executable, "-m", "celery", "-A", "celery_amqp_app", "inspect", *args, "-t", "10", "--json"]
        done = subprocess.run(command, cwd=HERE, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    client = fleet.celery_client(queue_name)
    try:
        worker.wait_for_output("ready.")
        assert '"ok": "pong"' in inspect("ping")
        stats = inspect("stats")
        assert '"prefetch_count"' in stats and '"pid"' in stats
        assert f'"name": "{queue_name}"' in inspect("active_queues")

        seen: dict[str, dict[str, Any]] = {}
        consuming = threading.Event()
        finished = threading.Event()

        def on_event(event: dict[str, Any]) -> None:
            seen.setdefault(event["type"], event)
            if event["type"] == "worker-heartbeat":
                consuming.set()
            if event["type"] == "task-succeeded":
                finished.set()
                receiver.should_stop = True

        with client.connection() as connection:
            receiver = client.events.Receiver(connection, handlers={"*": on_event})
            thread = threading.Thread(target=lambda: receiver.capture(limit=None, timeout=30), daemon=True)
            thread.start()
            assert consuming.wait(30), "no worker-heartbeat from the celeriac worker"
            result = client.tasks["taskapp.add"].delay(20, 22)
            assert result.get(timeout=20) == 42
            assert finished.wait(30), f"no task-succeeded event; seen {sorted(seen)}"
            thread.join(timeout=30)
        assert {"task-received", "task-started", "task-succeeded"} <= set(seen), sorted(seen)
        assert seen["task-succeeded"]["uuid"] == result.id
        assert seen["worker-heartbeat"]["hostname"].startswith("celeriac-")
    finally:
        client.close()
        codes = fleet.stop_all()
    assert codes == [0], worker.output[-3000:]
