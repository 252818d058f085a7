"""Errbacks in both of Celery's styles on a real in-process worker (SQLite and Redis): a new-style errback (one
argument) or a bound one (whatever its arguments) is sent as a task with the failed task's id; an unbound old-style
one registered on the worker (more than one positional argument, or ``*args``) is called there with
``(request, exc, traceback)`` before its own args. A task the worker does not have fails its chord and runs its
errbacks."""

from __future__ import annotations

from typing import Any

import pytest
from cluster import Broker

from celeriac.canvas import ChordError
from celeriac.testing import start_worker, wait_for

TIMEOUT = 20


async def test_old_and_new_style_errbacks(broker: Broker) -> None:
    app = broker.app("errbacks")
    calls: list[tuple[Any, ...]] = []

    @app.task(name="e.boom")
    def boom() -> None:
        raise KeyError("lost")

    @app.task(name="e.new_style")
    def new_style(task_id: str) -> None:
        calls.append(("new", task_id))

    @app.task(name="e.old_sync")
    def old_sync(request: Any, exc: BaseException, traceback: str) -> None:
        calls.append(("old-sync", request.id, type(exc).__name__, "KeyError" in traceback))

    @app.task(name="e.old_async")
    async def old_async(request: Any, exc: BaseException, traceback: str, tag: str) -> None:
        calls.append(("old-async", request.id, repr(exc), tag))

    @app.task(name="e.bound", bind=True)
    def bound(self: Any, task_id: str, tag: str = "") -> None:  # sent, as Celery sends bound errbacks
        calls.append(("bound", task_id, self.request.id != task_id))

    @app.task(name="e.star")
    def star(*args: Any) -> None:
        calls.append(("star", args[0].id, len(args)))

    async with start_worker(app, concurrency=2):
        errbacks = [new_style.s(), old_sync.s(), old_async.s("mine"), star.s(), bound.s()]
        failed = await boom.aapply_async(link_error=errbacks)
        await wait_for(lambda: len(calls) == 5, timeout=TIMEOUT)
    assert sorted(calls, key=lambda c: str(c[0])) == [
        ("bound", failed.id, True),
        ("new", failed.id),
        ("old-async", failed.id, "KeyError('lost')", "mine"),
        ("old-sync", failed.id, "KeyError", True),
        ("star", failed.id, 3),
    ]
    await app.aclose()


async def test_a_task_no_worker_has_fails_its_chord_and_runs_its_errbacks(broker: Broker) -> None:
    app = broker.app("unknown-member")
    calls: list[str] = []

    @app.task(name="u.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="u.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="u.on_error")
    def on_error(task_id: str) -> None:
        calls.append(task_id)

    async with start_worker(app, concurrency=2):
        missing = app.signature("u.not_registered", (1, 2)).on_error(on_error.s())
        body = await chord_of(app, [add.s(1, 1), missing], tsum.s())
        with pytest.raises(ChordError, match=r"NotRegistered|not_registered"):
            await body.aget(timeout=TIMEOUT)
        await wait_for(lambda: len(calls) == 1, timeout=TIMEOUT)
    await app.aclose()


async def chord_of(app: Any, header: list[Any], body: Any) -> Any:
    from celeriac.canvas import chord

    return await chord(header, body, app=app).aapply_async()
