"""Errbacks in both of Celery's styles on a real in-process worker (SQLite and Redis): a new-style errback (one
argument) is sent as a task with the failed task's id; an old-style one registered on the worker (more than one
positional argument, or ``*args``) is called there with ``(request, exc, traceback)`` before its own args."""

from __future__ import annotations

from typing import Any

from cluster import Broker

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

    @app.task(name="e.old_async_bound", bind=True)
    async def old_async_bound(self: Any, request: Any, exc: BaseException, traceback: str, tag: str) -> None:
        calls.append(("old-async", request.id, repr(exc), tag))

    @app.task(name="e.star")
    def star(*args: Any) -> None:
        calls.append(("star", args[0].id, len(args)))

    async with start_worker(app, concurrency=2):
        failed = await boom.aapply_async(link_error=[new_style.s(), old_sync.s(), old_async_bound.s("mine"), star.s()])
        await wait_for(lambda: len(calls) == 4, timeout=TIMEOUT)
    assert sorted(calls, key=lambda c: str(c[0])) == [
        ("new", failed.id),
        ("old-async", failed.id, "KeyError('lost')", "mine"),
        ("old-sync", failed.id, "KeyError", True),
        ("star", failed.id, 3),
    ]
    await app.aclose()
