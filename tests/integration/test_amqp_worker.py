"""A real celeriac worker on RabbitMQ, in this process: tasks run end to end, with remote control and ETA."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest

from celeriac import App
from celeriac.testing import start_worker, wait_for

pytestmark = pytest.mark.amqp


@pytest.fixture
def app(amqp_url: str, sqlite_url: str) -> App:
    app = App("amqptest", broker=amqp_url, backend=sqlite_url)
    app.conf.task_default_queue = f"q-{uuid.uuid4().hex[:8]}"
    return app


async def test_worker_runs_tasks_answers_ping_and_holds_eta(app: App) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    async def mul(x: int, y: int) -> int:
        await asyncio.sleep(0)
        return x * y

    async with start_worker(app, concurrency=4, hostname=f"w-{uuid.uuid4().hex[:6]}@amqp") as worker:
        results = [await add.adelay(i, i) for i in range(20)]
        assert [await r.aget(timeout=20) for r in results] == [2 * i for i in range(20)]
        assert await (await mul.adelay(4, 5)).aget(timeout=20) == 20
        replies = await app.control.aping(timeout=2.0)
        assert any(worker.hostname in reply for reply in replies), replies
        started = time.monotonic()
        later = await add.aapply_async((1, 1), countdown=1.0)
        assert await later.aget(timeout=20) == 2
        assert time.monotonic() - started >= 0.9  # ran no earlier than its countdown
        await wait_for(lambda: worker.state.processed == 22)
    await app.aclose()


async def test_worker_and_client_recover_after_broker_closes_every_connection(
    app: App, amqp_vhost: str, ctl: Callable[..., str]
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    async with start_worker(app, concurrency=2) as worker:
        assert await (await add.adelay(1, 2)).aget(timeout=20) == 3
        await asyncio.to_thread(ctl, "close_all_connections", "--vhost", amqp_vhost, "test: recovery")
        # The client's transport reconnects on its own; the worker's consumer reconnects with backoff.
        results = [await add.adelay(i, 1) for i in range(10)]
        assert [await r.aget(timeout=30) for r in results] == [i + 1 for i in range(10)]
        await wait_for(lambda: worker.state.processed == 11)
    await app.aclose()
