"""A real worker on the embedded SQLite broker, in this process: tasks, results, retries, ETA, bad input, pools."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

import pytest

from celeriac import App, RemoteError, State
from celeriac.errors import MaxRetriesExceededError, TaskRevokedError, TimeoutError
from celeriac.protocol.message import Message
from celeriac.testing import start_worker, wait_for
from celeriac.worker.bootsteps import Step
from celeriac.worker.consumer.consumer import Consumer
from celeriac.worker.worker import Worker


@pytest.fixture
def app(sqlite_url: str) -> App:
    app = App("itest", broker=sqlite_url)
    app.conf.broker_transport_options = {"polling_interval": 0.02}
    return app


@pytest.mark.parametrize("pool", ["asyncio", "threads", "solo"])
async def test_sync_and_async_tasks_return_results(app: App, pool: str) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    async def mul(x: int, y: int) -> int:
        await asyncio.sleep(0)
        return x * y

    async with start_worker(app, pool=pool, concurrency=4) as worker:
        r1 = await add.adelay(2, 3)
        r2 = await mul.adelay(4, 5)
        assert await r1.aget(timeout=10) == 5
        assert await r2.aget(timeout=10) == 20
        assert (await r1.ameta())["status"] == State.SUCCESS
        await wait_for(lambda: worker.state.processed == 2)
        assert worker.state.total[add.name] == 1
    await app.aclose()


async def test_bound_task_sees_its_request(app: App) -> None:
    seen: dict[str, Any] = {}

    @app.task(bind=True)
    def whoami(self, tag: str) -> str:  # type: ignore[no-untyped-def]
        req = self.request
        seen.update(
            id=req.id,
            args=req.args,
            retries=req.retries,
            hostname=req.hostname,
            routing_key=req.delivery_info["routing_key"],
            called_directly=req.called_directly,
        )
        return tag

    async with start_worker(app, hostname="w1@testhost"):
        result = await whoami.aapply_async(("x",), task_id="fixed-id-1")
        assert await result.aget(timeout=10) == "x"
    assert seen == {
        "id": "fixed-id-1",
        "args": ("x",),
        "retries": 0,
        "hostname": "w1@testhost",
        "routing_key": "celery",
        "called_directly": False,
    }
    assert whoami.request.called_directly
    await app.aclose()


async def test_failure_reraises_original_type_with_traceback(app: App) -> None:
    class Custom(Exception):
        pass

    @app.task
    def boom() -> None:
        raise KeyError("missing")

    @app.task
    def custom() -> None:
        raise Custom("mine")

    async with start_worker(app):
        result = await boom.adelay()
        with pytest.raises(KeyError, match="missing"):
            await result.aget(timeout=10)
        meta = await result.ameta()
        assert meta["status"] == "FAILURE" and "KeyError" in (meta["traceback"] or "")
        assert isinstance(await result.aget(timeout=1, propagate=False), KeyError)
        # A class defined in a function cannot be imported back: a RemoteError names it.
        other = await custom.adelay()
        with pytest.raises((RemoteError, Custom)):
            await other.aget(timeout=10)
    await app.aclose()


async def test_retry_with_countdown_then_success(app: App) -> None:
    attempts: list[int] = []

    @app.task(bind=True, max_retries=5, default_retry_delay=0.05)
    def flaky(self) -> int:  # type: ignore[no-untyped-def]
        attempts.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry(exc=ConnectionError("again"))
        return self.request.retries

    async with start_worker(app):
        result = await flaky.adelay()
        assert await result.aget(timeout=15) == 2
    assert attempts == [0, 1, 2]
    await app.aclose()


async def test_retry_past_max_retries_fails(app: App) -> None:
    @app.task(bind=True, max_retries=1, default_retry_delay=0.01)
    def hopeless(self) -> None:  # type: ignore[no-untyped-def]
        raise self.retry()

    async with start_worker(app):
        result = await hopeless.adelay()
        with pytest.raises(MaxRetriesExceededError):
            await result.aget(timeout=15)
    await app.aclose()


async def test_autoretry_for_with_backoff(app: App) -> None:
    calls: list[float] = []

    @app.task(autoretry_for=(ConnectionError,), max_retries=3, retry_backoff=0.05, retry_jitter=False)
    async def fetch() -> str:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError("flaky network")
        return "page"

    async with start_worker(app):
        result = await fetch.adelay()
        assert await result.aget(timeout=15) == "page"
    assert len(calls) == 3
    # backoff 0.05 * 2**retries: the second gap is at least 0.1 s
    assert calls[2] - calls[1] >= 0.09
    await app.aclose()


async def test_autoretry_gives_up_with_the_original_error(app: App) -> None:
    @app.task(autoretry_for=(ConnectionError,), max_retries=2, default_retry_delay=0.01)
    def down() -> None:
        raise ConnectionError("still down")

    async with start_worker(app):
        result = await down.adelay()
        with pytest.raises(ConnectionError, match="still down"):
            await result.aget(timeout=15)
    await app.aclose()


async def test_countdown_runs_no_sooner_than_eta(app: App) -> None:
    ran_at: list[float] = []

    @app.task
    def stamp() -> None:
        ran_at.append(time.time())

    async with start_worker(app):
        sent = time.time()
        result = await stamp.aapply_async(countdown=0.5)
        await result.aget(timeout=10)
    assert ran_at[0] >= sent + 0.5 - 0.01  # the eta is computed just after `sent`
    await app.aclose()


async def test_expired_task_is_revoked_not_run(app: App) -> None:
    ran: list[int] = []

    @app.task
    def never() -> None:
        ran.append(1)

    # Expired before any worker sees it.
    result = await never.aapply_async(expires=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    async with start_worker(app):
        with pytest.raises(TaskRevokedError, match="expired"):
            await result.aget(timeout=10)
    assert ran == []
    assert (await result.ameta())["status"] == "REVOKED"
    await app.aclose()


async def test_get_times_out(app: App) -> None:
    @app.task
    def nothing() -> None: ...

    result = await nothing.adelay()  # no worker running
    with pytest.raises(TimeoutError):
        await result.aget(timeout=0.2)
    assert await result.astate() == "PENDING"
    await app.aclose()


async def _publish_raw(app: App, message: Message, queue: str = "celery") -> None:
    transport = await app.atransport()
    await transport.declare(queue)
    await transport.publish(message, queue)


async def test_bad_messages_are_rejected_with_a_reason_and_the_worker_goes_on(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task
    def ok() -> str:
        return "fine"

    caplog.set_level(logging.INFO, logger="celeriac")
    good_headers = {"task": ok.name, "id": "undecodable-1", "lang": "py"}
    await _publish_raw(app, Message(body=b"\xff\x00 not json", headers=good_headers))
    await _publish_raw(
        app,
        Message(
            body=b"garbage",
            content_type="application/x-python-serialize",
            content_encoding="binary",
            headers={**good_headers, "id": "pickled-1"},
        ),
    )
    await _publish_raw(
        app, Message(body=b"[[], {}, {}]", headers={**good_headers, "task": "no.such.task", "id": "unknown-1"})
    )
    await _publish_raw(app, Message(body=b'"a string"', headers={**good_headers, "id": "shape-1"}))
    await _publish_raw(app, Message(body=b"[1, 2]", headers={**good_headers, "id": "shape-2"}))
    async with start_worker(app) as worker:
        result = await ok.adelay()
        assert await result.aget(timeout=10) == "fine"
        transport = await app.atransport()
        await wait_for(lambda: worker.state.processed == 1)
        assert await transport.size("celery") == 0
    text = caplog.text
    for message_id in ("undecodable-1", "pickled-1", "unknown-1", "shape-1", "shape-2"):
        assert message_id in text, f"{message_id} was not logged"
    assert "not accepted" in text  # the pickle content type
    assert "unknown task 'no.such.task'" in text
    # The unknown task's failure is stored so a caller waiting on it gets an answer.
    unknown = app.AsyncResult("unknown-1")
    with pytest.raises(Exception, match=r"no\.such\.task"):
        await unknown.aget(timeout=5)
    # Nothing comes back: the bad messages were rejected, not requeued.
    transport = await app.atransport()
    assert await transport.size("celery") == 0
    await app.aclose()


async def test_reject_from_body_drops_the_message(app: App) -> None:
    from celeriac import Reject

    @app.task
    def refuse() -> None:
        raise Reject("no thanks", requeue=False)

    async with start_worker(app) as worker:
        result = await refuse.adelay()
        await wait_for(lambda: worker.state.processed == 1)
        meta = await result.ameta()
        assert meta["status"] == "FAILURE" and meta["result"]["exc_type"] == "Reject"
    await app.aclose()


async def test_ignore_result_stores_nothing(app: App) -> None:
    @app.task(ignore_result=True)
    def quiet() -> int:
        return 1

    async with start_worker(app) as worker:
        result = await quiet.adelay()
        await wait_for(lambda: worker.state.processed == 1)
        assert await result.astate() == "PENDING"
    await app.aclose()


async def test_custom_queue_and_routes(app: App) -> None:
    @app.task(queue="special")
    def routed() -> str:
        return "special"

    async with start_worker(app, queues=["special"]):
        result = await routed.adelay()
        assert await result.aget(timeout=10) == "special"
    await app.aclose()


async def test_user_steps_slot_into_both_blueprints(app: App) -> None:
    events: list[str] = []

    class Audit(Step[Worker]):
        async def start(self, worker: Worker) -> None:
            events.append(f"worker-start {worker.hostname}")

        async def stop(self, worker: Worker) -> None:
            events.append("worker-stop")

    class Greeter(Step[Consumer]):
        async def start(self, consumer: Consumer) -> None:
            events.append("consumer-start")

        async def stop(self, consumer: Consumer) -> None:
            events.append("consumer-stop")

    app.steps["worker"].append(Audit)
    app.steps["consumer"].append(Greeter)
    async with start_worker(app, hostname="steps@test"):
        # The user's worker step has no requires: it starts after the built-in ones (the consumer) and stops first.
        assert events == ["consumer-start", "worker-start steps@test"]
    assert events == ["consumer-start", "worker-start steps@test", "worker-stop", "consumer-stop"]
    await app.aclose()


async def test_concurrency_limits_tasks_in_flight(app: App) -> None:
    running = 0
    peak = 0
    gate = asyncio.Event()

    @app.task
    async def hold() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1

    async with start_worker(app, concurrency=3):
        results = [await hold.adelay() for _ in range(6)]
        await wait_for(lambda: running == 3)
        gate.set()
        for result in results:
            await result.aget(timeout=10)
    assert peak == 3
    await app.aclose()


async def test_async_time_limit_fails_the_task(app: App) -> None:
    @app.task(time_limit=0.2)
    async def forever() -> None:
        await asyncio.sleep(60)

    async with start_worker(app):
        result = await forever.adelay()
        with pytest.raises(Exception, match=r"TimeLimitExceeded|Time limit"):
            await result.aget(timeout=10)
    await app.aclose()
