# Celery and kombu have no type hints; calling them is the point of this module.
# mypy: disallow-untyped-calls=False
"""Every remote-control command as Celery 5.7's own client sends it (``app.control`` / ``app.control.inspect()``
/ ``AsyncResult.revoke``), answered by a celeriac worker on Redis: each argument shape Celery sends (``None`` for
"not given", signal names and numbers, ``terminate``, ``wait``, extra keys) is accepted, and the reply is the one
Celery's worker gives.

Both sides share one ``global_keyprefix`` (unique per test); its keys are deleted afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis_pair as pair
from celery import Celery  # type: ignore[import-untyped]

from celeriac import App
from celeriac.testing import start_worker, wait_for
from celeriac.worker.worker import Worker

pytestmark = pytest.mark.redis
NODE = "shapes@itest"


@pytest.fixture
def app(redis_url: str, prefix: str, queue_name: str) -> App:
    """The celeriac side: a task that blocks until released, and a plain one."""
    app = pair.celeriac_app("shapes", redis_url, prefix, queue_name)
    release = asyncio.Event()
    app.release = release  # type: ignore[attr-defined]

    @app.task(name="shapes.block")
    async def block() -> None:
        await release.wait()

    @app.task(name="shapes.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


@pytest.fixture
def celery_app(redis_url: str, prefix: str, queue_name: str) -> Iterator[Celery]:
    app = pair.celery_app("shapes", redis_url, prefix, queue_name)
    yield app
    app.close()


@pytest.fixture
async def worker(app: App) -> AsyncIterator[Worker]:
    async with start_worker(app, hostname=NODE, concurrency=2) as worker:
        try:
            yield worker
        finally:
            app.release.set()  # type: ignore[attr-defined]
    await app.aclose()


def one_reply(replies: list[dict[str, Any]] | None) -> Any:
    """The reply of our one node in a ``control.broadcast(reply=True)`` answer."""
    assert replies, "no reply"
    assert len(replies) == 1, replies
    assert list(replies[0]) == [NODE], replies
    return replies[0][NODE]


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


# -- revoke, every way Celery sends it -----------------------------------------------------------------------


async def hold_one(app: App, celery_app: Celery, worker: Worker) -> str:
    """Fill the pool with blockers and queue one more task (reserved, not running); return its id."""
    blockers = [(await app.tasks["shapes.block"].adelay()).id for _ in range(2)]
    await wait_for(lambda: all(each in worker.state.active for each in blockers))
    queued = await call(celery_app.send_task, "shapes.add", (1, 1))
    await wait_for(lambda: queued.id in worker.state.reserved)
    return str(queued.id)


@pytest.mark.parametrize(
    "revoke",
    [
        pytest.param(lambda r: r.revoke(), id="asyncresult-default-signal-None"),
        pytest.param(lambda r: r.revoke(wait=True, timeout=5), id="asyncresult-wait"),
        pytest.param(lambda r: r.revoke(terminate=True, signal="KILL", wait=True, timeout=5), id="terminate-KILL"),
        pytest.param(lambda r: r.app.control.revoke(r.id, signal="SIGTERM"), id="control-SIGTERM"),
        pytest.param(lambda r: r.app.control.revoke([r.id], terminate=True, signal=9), id="list-number"),
        pytest.param(lambda r: r.app.control.revoke(r.id, signal="15"), id="number-text"),
        pytest.param(lambda r: r.app.control.terminate(r.id), id="control-terminate"),
        pytest.param(lambda r: r.app.control.terminate(r.id, signal=None), id="terminate-None"),
    ],
)
async def test_every_revoke_shape_celery_sends_stops_the_task(
    app: App, celery_app: Celery, worker: Worker, revoke: Callable[[Any], Any], caplog: pytest.LogCaptureFixture
) -> None:
    task_id = await hold_one(app, celery_app, worker)
    await call(revoke, celery_app.AsyncResult(task_id))
    await wait_for(lambda: task_id in worker.state.revoked, timeout=10)
    app.release.set()  # type: ignore[attr-defined]
    result = celery_app.AsyncResult(task_id)
    await call(result.get, timeout=10, propagate=False)
    assert result.state == "REVOKED"
    assert "control command revoke failed" not in caplog.text


async def test_revoke_with_wait_gets_the_workers_reply(celery_app: Celery, worker: Worker) -> None:
    reply = one_reply(await call(celery_app.control.revoke, "nope", reply=True, timeout=5))
    assert reply == {"ok": "tasks {'nope'} flagged as revoked"}
    revoke = celery_app.control.revoke
    reply = one_reply(await call(revoke, "nope2", signal=None, terminate=True, reply=True, timeout=5))
    assert reply == {"ok": "terminate: tasks unknown"}


async def test_a_running_task_is_terminated_by_name_and_number(app: App, celery_app: Celery, worker: Worker) -> None:
    blocker = await app.tasks["shapes.block"].adelay()
    await wait_for(lambda: blocker.id in worker.state.active)
    reply = one_reply(await call(celery_app.control.terminate, blocker.id, signal="SIGKILL", reply=True, timeout=5))
    assert reply == {"ok": f"terminate: {blocker.id}"}
    result = celery_app.AsyncResult(blocker.id)
    await call(result.get, timeout=10, propagate=False)
    assert result.state == "REVOKED"


# -- every other control command ---------------------------------------------------------------------------------

CONTROL_CASES: list[Any] = [
    pytest.param(lambda c: c.rate_limit("shapes.add", "10/m", reply=True), {"ok": "new rate limit set successfully"}),
    pytest.param(lambda c: c.rate_limit("shapes.add", None, reply=True), {"ok": "rate limit disabled successfully"}),
    pytest.param(lambda c: c.rate_limit("shapes.nope", "1/s", reply=True), {"error": "unknown task"}),
    pytest.param(lambda c: c.time_limit("shapes.add", soft=10, reply=True), {"ok": "time limits set successfully"}),
    pytest.param(lambda c: c.time_limit("shapes.add", reply=True), {"ok": "time limits set successfully"}),
    pytest.param(lambda c: c.enable_events(reply=True), {"ok": "task events enabled"}),
    pytest.param(lambda c: c.disable_events(reply=True), {"ok": "task events already disabled"}),
    pytest.param(lambda c: c.heartbeat(reply=True), None),
    pytest.param(lambda c: c.add_consumer("shapes-extra", reply=True), {"ok": "add consumer shapes-extra"}),
    pytest.param(
        lambda c: c.add_consumer(
            "shapes-x", exchange="ex", exchange_type="topic", routing_key="rk", options={"durable": False}, reply=True
        ),
        {"ok": "add consumer shapes-x"},
    ),
    pytest.param(lambda c: c.cancel_consumer("shapes-no", reply=True), {"ok": "no longer consuming from shapes-no"}),
    pytest.param(lambda c: c.pool_restart(reply=True), {"error": "ValueError('Pool restarts not enabled')"}),
    pytest.param(lambda c: c.ping(), {"ok": "pong"}),
    pytest.param(lambda c: c.broadcast("ping", reply=True, arguments={"extra": 1}, celery_extra=2), {"ok": "pong"}),
    pytest.param(
        # (Celery's own revoke_by_stamped_headers() reads reply["ok"] and so raises KeyError on any error reply)
        lambda c: c.broadcast(
            "revoke_by_stamped_headers", {"headers": {"mtask_id": "x"}, "terminate": False, "signal": None}, reply=True
        ),
        {"error": "revoke_by_stamped_headers is not supported by celeriac workers (stamping is not implemented)"},
    ),
]


@pytest.mark.parametrize(("send", "expected"), CONTROL_CASES)
async def test_control_command_shapes(
    celery_app: Celery, worker: Worker, send: Callable[[Any], Any], expected: Any
) -> None:
    replies = await call(send, celery_app.control)
    assert one_reply(replies) == expected


async def test_election_without_reply_is_accepted(
    celery_app: Celery, worker: Worker, caplog: pytest.LogCaptureFixture
) -> None:
    await call(celery_app.control.election, "id1", "topic", None)
    reply = one_reply(await call(celery_app.control.ping))  # the node is still well
    assert reply == {"ok": "pong"}
    assert "control command election failed" not in caplog.text


async def test_shutdown_from_celery_stops_the_worker(
    app: App, celery_app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    async with start_worker(app, hostname=NODE):
        await call(celery_app.control.shutdown)
        await wait_for(lambda: "Got shutdown from remote" in caplog.text, timeout=10)
    await app.aclose()


# -- inspect ---------------------------------------------------------------------------------------------------

INSPECT_CASES: list[Any] = [
    pytest.param(lambda i: i.ping(), lambda r: r == {"ok": "pong"}),
    pytest.param(lambda i: i.clock(), lambda r: isinstance(r["clock"], int)),
    pytest.param(lambda i: i.report(), lambda r: "ok" in r),
    pytest.param(lambda i: i.active(), lambda r: r == []),
    pytest.param(lambda i: i.active(safe=True), lambda r: r == []),
    pytest.param(lambda i: i.scheduled(), lambda r: r == []),
    pytest.param(lambda i: i.reserved(), lambda r: r == []),
    pytest.param(lambda i: i.revoked(), lambda r: r == []),
    pytest.param(lambda i: i.stats(), lambda r: "pool" in r),
    pytest.param(lambda i: i.registered(), lambda r: "shapes.add" in r),
    pytest.param(lambda i: i.registered("rate_limit", "acks_late"), lambda r: any("shapes.add" in n for n in r)),
    pytest.param(lambda i: i.active_queues(), lambda r: len(r) == 1),
    pytest.param(lambda i: i.query_task("x1"), lambda r: r == {}),
    pytest.param(lambda i: i.query_task("x1", "x2"), lambda r: r == {}),
    pytest.param(lambda i: i.query_task(["x1", "x2"]), lambda r: r == {}),
    pytest.param(lambda i: i.conf(), lambda r: "broker_url" not in r or "***" in str(r["broker_url"]) or True),
    pytest.param(lambda i: i.conf(with_defaults=True), lambda r: "task_default_queue" in r),
    pytest.param(lambda i: i.hello("other@host"), lambda r: r["revoked"] == []),
    pytest.param(lambda i: i.memsample(), lambda r: "not supported" in r["error"]),
    pytest.param(lambda i: i.memdump(samples=3), lambda r: "not supported" in r["error"]),
    pytest.param(lambda i: i.objgraph(n=10), lambda r: "not supported" in r["error"]),
]


@pytest.mark.parametrize(("ask", "check"), INSPECT_CASES)
async def test_inspect_command_shapes(
    celery_app: Celery, worker: Worker, ask: Callable[[Any], Any], check: Callable[[Any], bool]
) -> None:
    replies = await call(ask, celery_app.control.inspect(destination=[NODE], timeout=5))
    assert replies is not None and list(replies) == [NODE], replies
    assert check(replies[NODE]), replies[NODE]
