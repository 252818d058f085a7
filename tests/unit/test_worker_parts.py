"""Small worker parts: routing, revoked set, Lamport clock, node names, retry decisions, message building."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from celeriac import App
from celeriac.app.routing import Router
from celeriac.errors import ConfigurationError, MaxRetriesExceededError, Retry
from celeriac.pools import Call, by_name
from celeriac.protocol.clock import LamportClock
from celeriac.protocol.codec import encode_task
from celeriac.protocol.message import Message
from celeriac.transports.base import Delivery
from celeriac.worker.policy import PolicyCache, warn_reject_without_acks_late
from celeriac.worker.request import Request
from celeriac.worker.state import RevokedSet, WorkerState
from celeriac.worker.tracer import Tracer
from celeriac.worker.worker import expand_hostname


def test_router_matches_names_and_globs_in_order() -> None:
    router = Router([{"reports.*": {"queue": "reports"}}, {"mail.send": "mail"}], "celery")
    assert router.queue_for("reports.daily") == "reports"
    assert router.queue_for("mail.send") == "mail"
    assert router.queue_for("other", task_queue="own") == "own"
    assert router.queue_for("other") == "celery"
    with pytest.raises(ConfigurationError):
        Router({"x": {"exchange": "e"}}, "celery").queue_for("x")


def test_revoked_set_is_bounded_and_expires() -> None:
    revoked = RevokedSet(maxlen=3, expires=100)
    for i in range(5):
        revoked.add(f"id{i}")
    assert len(revoked) == 3 and "id0" not in revoked and "id4" in revoked
    revoked.add("old", at=0.0)  # revoked long ago: expired
    assert "old" not in revoked


def test_lamport_clock() -> None:
    clock = LamportClock()
    assert clock.forward() == 1
    assert clock.adjust(10) == 11
    assert clock.adjust(3) == 12


def test_hostname_expansion() -> None:
    import socket

    host = socket.gethostname()
    assert expand_hostname("w1@%h") == f"w1@{host}"
    assert expand_hostname("w1") == f"w1@{host}"
    assert expand_hostname("100%%@x") == "100%@x"


def test_unknown_pool_is_one_line_with_suggestion() -> None:
    with pytest.raises(ConfigurationError, match="unknown pool 'thread'; did you mean 'threads'"):
        by_name("thread")


def test_build_message_fills_protocol_2_headers() -> None:
    app = App("msg", broker="sqlite:///unused.db")

    @app.task(queue="q1", time_limit=30)
    def add(x: int, y: int) -> int:
        return x + y

    before = dt.datetime.now(dt.UTC)
    message = app.build_message(add.name, (2, 3), {"z": 1}, task=add, countdown=10, expires=60, priority=5)
    assert message.task == "test_worker_parts.add" or message.task.endswith(".add")
    assert message.args == (2, 3) and message.kwargs == {"z": 1}
    assert message.eta is not None and message.eta >= before + dt.timedelta(seconds=10)
    assert message.expires is not None and message.expires >= before + dt.timedelta(seconds=60)
    assert message.root_id == message.id == message.correlation_id
    assert message.timelimit == (30, None)
    assert message.priority == 5
    assert message.origin is not None and message.origin.startswith("gen")
    with pytest.raises(TypeError):
        app.build_message("x", "not a list")  # type: ignore[arg-type]


def test_retry_raises_retry_then_max_retries() -> None:
    app = App("retry", broker="sqlite:///unused.db")

    @app.task(bind=True, max_retries=2)
    def job(self) -> None:  # type: ignore[no-untyped-def]
        self.retry(countdown=5)

    with pytest.raises(Retry) as info:
        job()
    assert info.value.when == 5 and info.value.max_retries == 2

    from celeriac.app.context import RequestContext
    from celeriac.app.current import request_var

    token = request_var().set(RequestContext(id="x", retries=2))
    try:
        with pytest.raises(MaxRetriesExceededError):
            job()
    finally:
        request_var().reset(token)


def test_autoretry_backoff_is_capped_and_stops_after_max() -> None:
    app = App("auto", broker="sqlite:///unused.db")

    @app.task(
        autoretry_for=(ConnectionError,), retry_backoff=True, retry_backoff_max=5, retry_jitter=False, max_retries=3
    )
    def job() -> None:
        raise ConnectionError

    delays = [job.autoretry(ConnectionError(), retries) for retries in range(4)]
    assert [d.when for d in delays[:3] if d] == [1, 2, 4]
    assert delays[3] is None
    assert job.autoretry(ValueError(), 0) is None
    capped = job.autoretry(ConnectionError(), 2)
    assert capped is not None
    app.conf  # noqa: B018 - the app stays usable


class _HeldAckDelivery(Delivery):
    """An in-memory delivery whose early ack stays on the wire until the test lands it."""

    def __init__(self, message: Message) -> None:
        self.message = message
        self.queue = self.exchange = ""
        self.routing_key = "celery"
        self.redelivered = False
        self.delivery_tag = "tag"
        self.landed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def ack_soon(self) -> asyncio.Future[None]:
        return self.landed

    async def ack(self) -> None:
        await self.landed

    async def reject(self, requeue: bool = False) -> None:
        raise AssertionError("a succeeding task is not rejected")


async def test_the_pool_slot_does_not_wait_for_the_early_ack_but_wait_acks_does() -> None:
    app = App("acks")

    @app.task
    async def nothing() -> None:
        """Ends at once."""

    app.finalize()
    message = app.build_message(nothing.name)
    delivery = _HeldAckDelivery(encode_task(message))
    tracer = Tracer(by_name("solo")(1, app.tasks), WorkerState(), [], None, "host")
    request = Request(message, delivery, nothing, "host", PolicyCache().get(nothing))
    await asyncio.wait_for(tracer.trace(request), 5)  # returns although the ack has not landed
    assert request.acknowledged and not delivery.landed.done()
    waiting = asyncio.ensure_future(tracer.wait_acks())
    await asyncio.sleep(0)
    assert not waiting.done()  # a warm shutdown would still wait here
    delivery.landed.set_result(None)
    await asyncio.wait_for(waiting, 5)


def _call_for(app: App, name: str, *, task_id: str = "call-1") -> Call:
    from celeriac.app.context import RequestContext

    context = RequestContext(
        id=task_id,
        task=name,
        args=(2, 3),
        kwargs={"k": 1},
        retries=4,
        hostname="w@h",
        delivery_info={"routing_key": "celery", "exchange": ""},
        headers={"x": "y"},
        root_id="root",
        parent_id="parent",
    )
    return Call(name, (2, 3), {"k": 1}, context, time_limit=5.0, acks_late=True, reject_on_worker_lost=True)


def test_a_call_round_trips_through_pickle_as_plain_data() -> None:
    import pickle

    app = App("calls")
    call = _call_for(app, "t.add")
    again = pickle.loads(pickle.dumps(call))
    assert again == call
    assert again.context.delivery_info["routing_key"] == "celery"
    assert (again.acks_late, again.reject_on_worker_lost, again.time_limit) == (True, True, 5.0)


async def test_a_call_with_a_lazy_request_pickles_its_context() -> None:
    import pickle

    app = App("calls")

    @app.task(name="t.add")
    async def add(x: int) -> int:
        return x

    message = app.build_message("t.add", (1,), {}, task_id="lazy-1")
    request = Request(message, _HeldAckDelivery(encode_task(message)), add, "w@h", PolicyCache().get(add))
    call = Call("t.add", (1,), {}, request)
    again = pickle.loads(pickle.dumps(call))
    assert again.request == request.context()
    assert again.context.id == "lazy-1" and again.context.hostname == "w@h"


@pytest.mark.parametrize("pool_name", ["asyncio", "threads", "solo"])
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_every_pool_runs_a_pickled_call_with_its_request(pool_name: str, kind: str) -> None:
    import pickle

    app = App("calls")
    seen: dict[str, object] = {}

    def record(req: Any) -> None:
        seen.update(
            id=req.id,
            args=req.args,
            kwargs=dict(req.kwargs),
            retries=req.retries,
            routing_key=req.delivery_info["routing_key"],
            headers=dict(req.headers),
            root_id=req.root_id,
            called_directly=req.called_directly,
        )

    if kind == "sync":

        @app.task(bind=True, name="t.add")
        def add(self, x: int, y: int, k: int) -> int:  # type: ignore[no-untyped-def]
            record(self.request)
            return x + y + k

    else:

        @app.task(bind=True, name="t.add")
        async def add(self, x: int, y: int, k: int) -> int:  # type: ignore[no-untyped-def]
            record(self.request)
            return x + y + k

    pool = by_name(pool_name)(2, app.tasks)
    await pool.start()
    try:
        call = pickle.loads(pickle.dumps(_call_for(app, "t.add")))
        assert await pool.execute(call) == 6
    finally:
        await pool.stop()
        await pool.close()
    assert seen == {
        "id": "call-1",
        "args": (2, 3),
        "kwargs": {"k": 1},
        "retries": 4,
        "routing_key": "celery",
        "headers": {"x": "y"},
        "root_id": "root",
        "called_directly": False,
    }
    assert add.request.called_directly  # the pool reset the context after the body


async def test_thread_lanes_limit_counts_from_the_start_and_a_stuck_lane_is_replaced() -> None:
    import threading
    import time

    from celeriac.errors import TimeLimitExceeded
    from celeriac.pools.lanes import ThreadLanes

    lanes = ThreadLanes("t-lane", lambda: 1)
    release = threading.Event()
    try:
        with pytest.raises(TimeLimitExceeded, match=r"Time limit \(0.2s\) exceeded for t.stuck"):
            await lanes.run(lambda: release.wait(10), 0.2, "t.stuck")
        assert lanes.written_off == 1
        # The stuck thread is not reused: the next body starts at once in a new one and gets its whole limit.
        assert await lanes.run(lambda: (time.sleep(0.1), threading.current_thread().name)[1], 0.5, "t.ok") == (
            "t-lane-2"
        )

        def own_timeout() -> None:
            raise TimeoutError("the body's own")

        with pytest.raises(TimeoutError, match="the body's own"):  # not mistaken for the limit
            await lanes.run(own_timeout, 5, "t.own")
    finally:
        release.set()
        lanes.close()


async def test_an_async_body_raising_timeout_error_is_not_a_time_limit() -> None:
    from celeriac.pools.base import bounded

    async def body() -> None:
        raise TimeoutError("socket")

    with pytest.raises(TimeoutError, match="socket"):
        await bounded(body(), 5, "t.x")


def test_reject_on_worker_lost_without_acks_late_is_named_once(caplog: pytest.LogCaptureFixture) -> None:
    app = App("rowl")

    @app.task(name="t.both", acks_late=True, reject_on_worker_lost=True)
    def both() -> None: ...

    @app.task(name="t.alone", reject_on_worker_lost=True)
    def alone() -> None: ...

    @app.task(name="t.plain")
    def plain() -> None: ...

    with caplog.at_level("WARNING", logger="celeriac.worker"):
        assert warn_reject_without_acks_late(app) == ["t.alone"]
    assert [r.getMessage() for r in caplog.records] == [
        "reject_on_worker_lost has no effect without acks_late; tasks: t.alone"
    ]
    app.conf.task_acks_late = True
    assert warn_reject_without_acks_late(app) == []
    assert PolicyCache().get(app.tasks["t.both"]).reject_on_worker_lost


async def test_a_lane_ending_cancels_what_async_bodies_left_on_its_loop() -> None:
    import threading

    from celeriac.pools.lanes import ThreadLanes, lane_loop

    lanes = ThreadLanes("t-lane", lambda: 1)
    ended = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.set()  # runs on the lane's loop while it is closed, not later in the garbage collector

    async def body() -> None:
        asyncio.get_running_loop().create_task(forever())  # left behind, as a backend's reader would be
        await asyncio.sleep(0)

    await lanes.run(lambda: lane_loop().run_until_complete(body()), 5, "t.leaves")
    lanes.close()
    assert await asyncio.to_thread(ended.wait, 10)
