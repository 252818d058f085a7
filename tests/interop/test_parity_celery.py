# Celery has no type hints; calling it is the point of this module.
# mypy: disallow-untyped-calls=False, disallow-untyped-decorators=False
"""A Celery 5.7 client's canvas runs on a celeriac worker (it once failed visibly here, before canvas landed).

A canvas (``chain``, ``chord``, ``link`` callbacks, ``link_error`` errbacks) arrives in the message body's embed;
the worker runs what comes next (tests/interop/test_celery_canvas.py has the full matrix).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from celery import Celery, chain, chord, group  # type: ignore[import-untyped]

from celeriac import App
from celeriac.testing import start_worker
from celeriac.worker.worker import Worker

pytestmark = pytest.mark.redis


@pytest.fixture
def app(redis_url: str, prefix: str, queue_name: str) -> App:
    app = App(
        "parity",
        broker=redis_url,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue_name,
    )

    @app.task(name="parity.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


@pytest.fixture
def celery_app(redis_url: str, prefix: str, queue_name: str) -> Iterator[Celery]:
    app = Celery(
        "parity",
        broker=redis_url,
        backend=redis_url,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue_name,
        set_as_current=False,
    )

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
