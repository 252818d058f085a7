"""Bulk sending (`App.send_tasks` / `asend_tasks`) on a real worker (SQLite and Redis): every message is what
apply_async would send (options, queues, countdowns and results work), FIFO order holds, and canvases are refused."""

from __future__ import annotations

from typing import Any

import pytest
from cluster import Broker

from celeriac import chain, signature
from celeriac.testing import start_worker, wait_for

TIMEOUT = 30


async def test_send_tasks_sends_what_apply_async_would(broker: Broker) -> None:
    app = broker.app("bulk")
    seen: list[int] = []

    @app.task(name="b.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="b.mark", ignore_result=True)
    async def mark(n: int) -> None:
        seen.append(n)

    marks = [mark.s(n) for n in range(300)]
    results = await app.asend_tasks([add.s(1, 2), add.s(3, 4).set(countdown=1), *marks, signature("b.add", (5, 6))])
    assert len(results) == 303 and len({r.id for r in results}) == 303
    async with start_worker(app, concurrency=1):  # one at a time: the queue's order is the run order
        assert [await r.aget(timeout=TIMEOUT) for r in (results[0], results[1], results[-1])] == [3, 7, 11]
        await wait_for(lambda: len(seen) == 300, timeout=TIMEOUT)
    assert seen == list(range(300))
    await app.aclose()


async def test_send_tasks_honours_common_options_and_refuses_canvases(broker: Broker) -> None:
    app = broker.app("bulk-options")

    @app.task(name="b.where", bind=True)
    def where(self: Any) -> str:
        return str(self.request.delivery_info.get("routing_key"))

    # Interleaved: each message is routed by its own options (routes are worked out once per kind in a call).
    second = where.s().set(queue="second")
    results = await app.asend_tasks([where.s(), second, where.s(), second.clone()], queue="first")
    async with start_worker(app, concurrency=2, queues=["first", "second"]):
        assert [await r.aget(timeout=TIMEOUT) for r in results] == ["first", "second", "first", "second"]
    with pytest.raises(TypeError, match="send_tasks takes task signatures"):
        await app.asend_tasks([chain(where.s(), where.s())])
    with pytest.raises(ValueError, match="no_such_option not supported"):
        await app.asend_tasks([where.s()], no_such_option=1)
    await app.aclose()


async def test_send_tasks_runs_here_under_always_eager(broker: Broker) -> None:
    app = broker.app("bulk-eager")
    app.conf.task_always_eager = True

    @app.task(name="b.double")
    def double(x: int) -> int:
        return 2 * x

    results = await app.asend_tasks([double.s(n) for n in range(3)])
    assert [r.get() for r in results] == [0, 2, 4]
    await app.aclose()
