"""``Task.retry(throw=False)``: the message is re-sent by retry() itself, which then returns the `Retry`."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from celeriac import App, Retry
from celeriac.app.context import RequestContext
from celeriac.app.current import request_var
from celeriac.errors import MaxRetriesExceededError
from celeriac.protocol.codec import decode_task
from celeriac.protocol.message import TaskMessage
from celeriac.testing import start_worker, wait_for


@pytest.fixture
def app(sqlite_url: str) -> App:
    app = App("retrying", broker=sqlite_url)
    app.conf.broker_transport_options = {"polling_interval": 0.02}
    return app


async def next_message(app: App, queue: str) -> TaskMessage:
    async with app.make_transport() as transport:
        consumer = transport.consume([queue], prefetch=1)
        delivery = await asyncio.wait_for(anext(consumer), 10)
        await delivery.ack()
        await consumer.cancel()
        return decode_task(delivery.message, app.accept)


def test_retry_without_throw_sends_the_message_and_returns(app: App) -> None:
    @app.task(bind=True, max_retries=2)
    def flaky(self, n: int) -> int:  # type: ignore[no-untyped-def]
        return n

    task_id, root_id = str(uuid.uuid4()), str(uuid.uuid4())
    request = RequestContext(
        id=task_id, task=flaky.name, args=(1,), retries=0, root_id=root_id, delivery_info={"routing_key": "jobs"}
    )
    token = request_var().set(request)
    try:
        signal = flaky.retry(args=(2,), countdown=0, throw=False)
    finally:
        request_var().reset(token)
        app.close()
    assert isinstance(signal, Retry) and signal.when == 0
    message = asyncio.run(next_message(app, "jobs"))
    assert (message.id, message.task, message.args, message.retries) == (task_id, flaky.name, (2,), 1)
    assert (message.root_id, message.parent_id) == (root_id, task_id)


def test_retry_without_throw_still_raises_past_max_retries(app: App) -> None:
    @app.task(bind=True, max_retries=1)
    def flaky(self) -> None:  # type: ignore[no-untyped-def]
        return None

    token = request_var().set(RequestContext(id=str(uuid.uuid4()), retries=1))
    try:
        with pytest.raises(MaxRetriesExceededError):
            flaky.retry(throw=False)
    finally:
        request_var().reset(token)


async def test_worker_runs_the_task_again_after_retry_without_throw(app: App) -> None:
    runs: list[int] = []

    @app.task(bind=True, max_retries=3)
    def once_more(self, tag: str) -> str:  # type: ignore[no-untyped-def]
        runs.append(self.request.retries)
        if self.request.retries == 0:
            self.retry(countdown=0, throw=False)
        return tag

    async with start_worker(app, pool="threads", concurrency=2) as worker:
        result = await once_more.adelay("done")
        await wait_for(lambda: runs == [0, 1] and worker.state.processed == 2)
        assert await result.aget(timeout=10) == "done"
    await app.aclose()
