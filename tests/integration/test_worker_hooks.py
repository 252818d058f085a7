"""On a real in-process worker: the tracer's on_stored seam (after the store, before the late ack); reconnects."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import App, State
from celeriac.errors import ConnectionLost
from celeriac.testing import start_worker, wait_for
from celeriac.worker import Step, Worker
from celeriac.worker.consumer.consumer import Consumer
from celeriac.worker.outcome import Outcome
from celeriac.worker.request import Request


@pytest.fixture
def app(sqlite_url: str) -> App:
    app = App("hooks", broker=sqlite_url)
    app.conf.broker_transport_options = {"polling_interval": 0.02}
    return app


@pytest.mark.parametrize("pool", ["asyncio", "threads", "solo"])
async def test_on_stored_runs_after_the_store_and_before_the_late_ack(app: App, pool: str) -> None:
    @app.task(acks_late=True)
    def add(x: int, y: int) -> int:
        return x + y

    seen: list[tuple[Any, ...]] = []
    handled: list[Request] = []

    async def hook(request: Request, outcome: Outcome) -> None:
        meta = await app.AsyncResult(request.id).ameta()
        seen.append((outcome.state, outcome.value, meta["status"], request.acknowledged))
        handled.append(request)

    async with start_worker(app, pool=pool) as worker:
        worker.on_stored.append(hook)
        result = await add.adelay(2, 3)
        assert await result.aget(timeout=10) == 5
        await wait_for(lambda: bool(handled) and handled[0].acknowledged)
    assert seen == [(State.SUCCESS, 5, State.SUCCESS, False)]
    await app.aclose()


async def test_on_stored_sees_failures_in_order(app: App) -> None:
    @app.task(acks_late=True)
    def boom() -> None:
        raise ValueError("no")

    order: list[str] = []

    async def first(request: Request, outcome: Outcome) -> None:
        assert outcome.state == State.FAILURE and isinstance(outcome.value, ValueError) and outcome.traceback
        order.append("first")

    async def second(request: Request, outcome: Outcome) -> None:
        order.append("second")

    async with start_worker(app) as worker:
        worker.on_stored.extend([first, second])
        result = await boom.adelay()
        with pytest.raises(ValueError):
            await result.aget(timeout=10)
        await wait_for(lambda: order == ["first", "second"])
    await app.aclose()


async def test_a_failing_hook_leaves_the_late_message_for_redelivery(app: App) -> None:
    runs: list[int] = []

    @app.task(acks_late=True)
    def once(x: int) -> int:
        runs.append(x)
        return x

    calls: list[bool] = []

    async def flaky(request: Request, outcome: Outcome) -> None:
        calls.append(request.acknowledged)
        if len(calls) == 1:
            raise RuntimeError("could not publish the next link")

    async with start_worker(app) as worker:
        worker.on_stored.append(flaky)
        await once.adelay(7)
        await wait_for(lambda: len(calls) == 2, timeout=20)  # requeued, run again, hook succeeds
        await wait_for(lambda: worker.state.processed == 2)
    assert runs == [7, 7] and calls == [False, False]
    await app.aclose()


async def test_a_reconnect_restarts_every_consumer_step_and_no_worker_step(app: App) -> None:
    # No `connection_bound` flag: the consumer's blueprint is what lives with one broker connection.
    events: list[str] = []

    class Audit(Step[Worker]):
        async def start(self, worker: Worker) -> None:
            events.append("worker-start")

    class Probe(Step[Consumer]):
        async def start(self, consumer: Consumer) -> None:
            events.append("consumer-start")

        async def stop(self, consumer: Consumer) -> None:
            events.append("consumer-stop")

    app.steps["worker"].append(Audit)
    app.steps["consumer"].append(Probe)
    async with start_worker(app) as worker:
        assert events == ["consumer-start", "worker-start"]
        worker.consumer.connection_lost(ConnectionLost("test: link dropped"))
        await wait_for(lambda: events == ["consumer-start", "worker-start", "consumer-stop", "consumer-start"])
        assert worker.consumer.blueprint.get(Probe) in worker.consumer.blueprint.started
    await app.aclose()
