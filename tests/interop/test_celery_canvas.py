# Celery has no type hints; calling it is the point of this module.
# mypy: disallow-untyped-calls=False, disallow-untyped-decorators=False
"""Canvas across Celery 5.7 and celeriac on one Redis database (broker and results, a prefix per test).

* a Celery client's chain, group, chord, chord with a failing header and ``group | chord`` on a celeriac worker,
  read by the Celery client;
* the same built by a celeriac client on a Celery worker, read by celeriac;
* one chord whose header tasks run on a Celery and a celeriac worker at once (both join on Celery's keys).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, chain, chord, group  # type: ignore[import-untyped]
from celery.exceptions import ChordError as CeleryChordError  # type: ignore[import-untyped]

import celeriac
from celeriac import App, ChordError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_celery_interop import CeleryWorker, start_celeriac_worker

pytestmark = pytest.mark.redis

TIMEOUT = 30


@pytest.fixture(autouse=True)
def steps_to_the_test_queue(queue_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers (of either kind) send the canvas steps they run to this test's queue, as the client does."""
    monkeypatch.setenv("TEST_DEFAULT_QUEUE", queue_name)


@pytest.fixture
def celery_client(redis_url: str, prefix: str, queue_name: str) -> Iterator[Celery]:
    app = Celery("client", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue_name,
    )

    def stub(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("runs on a worker, never here")

    for name in ("add", "fail", "tsum"):
        app.task(name=f"taskapp.{name}", shared=False)(stub)
    yield app
    app.close()


@pytest.fixture
def celeriac_client(redis_url: str, prefix: str, queue_name: str) -> Iterator[App]:
    app = App("client", broker=redis_url, task_default_queue=queue_name)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    yield app
    app.close()


def test_celery_client_canvas_on_a_celeriac_worker(
    redis_url: str, prefix: str, queue_name: str, celery_client: Celery
) -> None:
    add, fail, tsum = (celery_client.tasks[f"taskapp.{n}"] for n in ("add", "fail", "tsum"))
    worker = start_celeriac_worker(redis_url, prefix, queue_name, ["-c", "4"])
    try:
        worker.wait_for_output("ready.")
        steps = chain(add.s(1, 1), add.s(2), add.s(3)).apply_async()
        assert steps.get(timeout=TIMEOUT) == 7
        # The celeriac worker stores each step's next step as its child, read by Celery's result_from_tuple.
        assert [child.id for child in steps.parent.parent.children] == [steps.parent.id]
        assert group(add.s(i, i) for i in range(4)).apply_async().get(timeout=TIMEOUT) == [0, 2, 4, 6]
        assert chord([add.s(1, 2), add.s(3, 4)], tsum.s()).apply_async().get(timeout=TIMEOUT) == 10
        both = group(add.s(1, 1), add.s(2, 2)) | chord([tsum.s(), tsum.s()], tsum.s())
        assert both.apply_async().get(timeout=TIMEOUT) == 12
        failing = chord([add.s(1, 1), fail.si("kaboom")], tsum.s()).apply_async()
        with pytest.raises(ValueError, match="kaboom"):  # Celery's get() raises the failed parent's error first
            failing.get(timeout=TIMEOUT)
        assert isinstance(failing.get(timeout=TIMEOUT, propagate=False), CeleryChordError)  # the body's own
        linked = add.apply_async((2, 2), link=add.s(10))
        assert linked.get(timeout=TIMEOUT) == 4
        assert [child.get(timeout=TIMEOUT) for child in linked.children] == [14]
    finally:
        code = worker.stop()
    assert code == 0, worker.output


def test_celeriac_client_canvas_on_a_celery_worker(
    redis_url: str, prefix: str, queue_name: str, celeriac_client: App
) -> None:
    add, fail, tsum = (celeriac.signature(f"taskapp.{n}", app=celeriac_client) for n in ("add", "fail", "tsum"))

    def s(sig: celeriac.Signature, *args: Any) -> celeriac.Signature:
        return sig.clone(args)

    worker = CeleryWorker(redis_url, prefix, queue_name, ["-P", "threads", "-c", "4"])
    try:
        worker.wait_for_output("ready.")
        res = celeriac.chain(s(add, 1, 1), s(add, 2), s(add, 3), app=celeriac_client).apply_async()
        assert res.get(timeout=TIMEOUT) == 7
        assert res.parent.get(timeout=TIMEOUT) == 4
        res.parent.parent.get(timeout=TIMEOUT)
        assert [child.id for child in res.parent.parent.children] == [res.parent.id]  # stored by Celery's worker
        g = celeriac.group([s(add, i, i) for i in range(4)], app=celeriac_client).apply_async()
        assert g.get(timeout=TIMEOUT) == [0, 2, 4, 6]
        c = celeriac.chord([s(add, 1, 2), s(add, 3, 4)], tsum, app=celeriac_client).apply_async()
        assert c.get(timeout=TIMEOUT) == 10
        failing = celeriac.chord([s(add, 1, 1), fail.clone(("kaboom",)).set(immutable=True)], tsum, app=celeriac_client)
        with pytest.raises(ChordError, match="kaboom"):
            failing.apply_async().get(timeout=TIMEOUT)
        inner = celeriac.chord([tsum, tsum], tsum, app=celeriac_client)
        both = celeriac.group([s(add, 1, 1), s(add, 2, 2)], app=celeriac_client) | inner
        assert both.apply_async().get(timeout=TIMEOUT) == 12
    finally:
        code = worker.stop()
    assert code == 0, worker.output


def test_one_chord_joined_by_celery_and_celeriac_workers(
    redis_url: str, prefix: str, queue_name: str, celery_client: Celery
) -> None:
    """Header tasks spread over both kinds of worker: the body runs once, with every result in order."""
    add, tsum = celery_client.tasks["taskapp.add"], celery_client.tasks["taskapp.tsum"]
    ours = start_celeriac_worker(redis_url, prefix, queue_name, ["-c", "2", "--prefetch-multiplier", "1"])
    theirs = CeleryWorker(redis_url, prefix, queue_name, ["-P", "threads", "-c", "2", "--prefetch-multiplier", "1"])
    try:
        ours.wait_for_output("ready.")
        theirs.wait_for_output("ready.")
        results = [chord([add.s(i, j) for j in range(12)], tsum.s()).apply_async() for i in range(4)]
        assert [r.get(timeout=TIMEOUT) for r in results] == [12 * i + 66 for i in range(4)]
    finally:
        codes = (ours.stop(), theirs.stop())
    assert codes[0] == 0, ours.output
