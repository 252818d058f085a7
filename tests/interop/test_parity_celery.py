# Celery has no type hints; calling it is the point of this module.
# mypy: disallow-untyped-calls=False, disallow-untyped-decorators=False
"""A Celery 5.7 client's canvas runs on a celeriac worker (it once failed visibly here, before canvas landed); and
settings that used to be ignored now meet Celery's workers on the wire.

A canvas (``chain``, ``chord``, ``link`` callbacks, ``link_error`` errbacks) arrives in the message body's embed;
the worker runs what comes next (tests/interop/test_celery_canvas.py has the full matrix).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, chain, chord, group  # type: ignore[import-untyped]
from kombu.connection import Connection

from celeriac import App
from celeriac.testing import start_worker
from celeriac.worker.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
from procs import LoggedProcess

sys.path.insert(0, str(Path(__file__).resolve().parent))
import redis_pair as pair

pytestmark = pytest.mark.redis


@pytest.fixture
def app(redis_url: str, prefix: str, queue_name: str) -> App:
    app = pair.celeriac_app("parity", redis_url, prefix, queue_name)

    @app.task(name="parity.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


@pytest.fixture
def celery_app(redis_url: str, prefix: str, queue_name: str) -> Iterator[Celery]:
    app = pair.celery_app("parity", redis_url, prefix, queue_name)

    @app.task(name="parity.add", shared=False)
    def add(x: int, y: int) -> int:
        raise AssertionError("runs on the celeriac worker")

    yield app
    app.close()


@pytest.fixture
async def worker(app: App) -> AsyncIterator[Worker]:
    async with start_worker(app, hostname="parity@itest") as worker:
        yield worker
    await app.aclose()


CANVASES: list[Any] = [
    pytest.param(lambda add: chain(add.s(1, 2), add.s(3)).apply_async(), 6, id="chain"),
    pytest.param(lambda add: add.apply_async((1, 2), link=add.s(3)), 3, id="link"),
    pytest.param(lambda add: add.apply_async((1, 2), link_error=add.si(0, 0)), 3, id="link_error"),
]


@pytest.mark.parametrize(("send", "value"), CANVASES)
async def test_a_canvas_from_celery_runs(
    celery_app: Celery, worker: Worker, send: Callable[[Any], Any], value: int
) -> None:
    result = await asyncio.to_thread(send, celery_app.tasks["parity.add"])
    assert await asyncio.to_thread(result.get, timeout=20) == value


async def test_a_chord_from_celery_joins(celery_app: Celery, worker: Worker) -> None:
    add = celery_app.tasks["parity.add"]
    result = await asyncio.to_thread(lambda: chord(group(add.s(1, 1), add.s(2, 2)), add.si(5, 5)).apply_async())
    assert await asyncio.to_thread(result.get, timeout=20) == 10
    assert await asyncio.to_thread(result.parent.get, timeout=20) == [2, 4]


CELERY_WORKER_APP = """
import os

from celery import Celery

url, prefix, queue = os.environ["TEST_BROKER"], os.environ["TEST_PREFIX"], os.environ["TEST_QUEUE"]
app = Celery("parity_side", broker=url, backend=url)
app.conf.update(
    broker_transport_options={"global_keyprefix": prefix},
    result_backend_transport_options={"global_keyprefix": prefix},
    task_default_queue=queue,
    task_default_exchange="parity-ex",
    task_default_routing_key="parity.key",
    broker_connection_retry_on_startup=True,
)


@app.task(name="parity.where", bind=True)
def where(self):
    info = self.request.delivery_info
    return [info.get("exchange"), info.get("routing_key")]
"""


def test_default_exchange_and_routing_key_reach_a_celery_worker(
    tmp_path: Path, redis_url: str, prefix: str, queue_name: str
) -> None:
    """celeriac sends through Celery's default-queue topology (exchange + routing key) as a Celery worker
    declared it: the Celery worker gets the task."""
    (tmp_path / "parity_side.py").write_text(CELERY_WORKER_APP)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TEST_BROKER": redis_url, "TEST_PREFIX": prefix}
    env["TEST_QUEUE"] = queue_name
    command = [sys.executable, "-m", "celery", "-A", "parity_side", "worker", "-l", "info", "-P", "solo"]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat", "-n", f"parity-{queue_name}@%h"]
    worker = LoggedProcess(command, tmp_path, env)
    client = App(
        "parity_client",
        broker=redis_url,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue_name,
        task_default_exchange="parity-ex",
        task_default_routing_key="parity.key",
    )
    try:
        worker.wait_for_output("ready.")
        assert client.send_task("parity.where").get(timeout=20) == ["parity-ex", "parity.key"]
    finally:
        client.close()
        code = worker.stop()
    assert code == 0, worker.output


def test_celerys_event_receiver_sees_task_sent(redis_url: str, prefix: str, queue_name: str) -> None:
    """``task_send_sent_event``: Celery's receiver reads celeriac's ``task-sent`` events into its State (the task
    is PENDING with its name and queue before any worker saw it)."""
    celery_app = Celery("parity_monitor", broker=redis_url, set_as_current=False)
    client = App(
        "parity_sent",
        broker=redis_url,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue_name,
        task_send_sent_event=True,
    )
    seen: list[dict[str, Any]] = []
    subscribed = threading.Event()

    def receive() -> None:
        with Connection(redis_url, transport_options={"global_keyprefix": prefix}) as connection:

            def on_event(event: dict[str, Any]) -> None:
                seen.append(event)
                receiver.should_stop = event.get("type") == "task-sent"

            receiver = celery_app.events.Receiver(connection, handlers={"*": on_event})
            subscribed.set()
            receiver.capture(limit=None, timeout=20, wakeup=False)

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    try:
        assert subscribed.wait(10)
        sent: list[str] = []
        # A fanout message published before the receiver's SUBSCRIBE is lost: send until one is seen.
        deadline = time.monotonic() + 20
        while thread.is_alive() and time.monotonic() < deadline:
            sent.append(client.send_task("parity.nobody", (1, 2), countdown=600).id)
            thread.join(0.2)
        assert not thread.is_alive(), "Celery's receiver saw no task-sent event"
    finally:
        client.close()
        celery_app.close()
    event = next(e for e in seen if e["type"] == "task-sent")
    assert event["uuid"] in sent and event["name"] == "parity.nobody" and event["queue"] == queue_name
    state = celery_app.events.State()
    state.event(event)
    task = state.tasks[event["uuid"]]
    assert (task.state, task.name, task.args) == ("PENDING", "parity.nobody", "(1, 2)")
