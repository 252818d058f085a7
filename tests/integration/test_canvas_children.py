"""A task's stored result lists the tasks it sent (``children``), as Celery's worker stores them: tasks sent from
the body (async and sync bodies, on the asyncio and threads pools), its callbacks and the next step of its chain;
``add_to_parent=False`` and ``trail=False`` leave them out. On SQLite and on Redis (broker and results)."""

from __future__ import annotations

from typing import Any

import pytest
from cluster import Broker

from celeriac import App, chain
from celeriac.testing import start_worker

TIMEOUT = 20


def make_app(broker: Broker) -> App:
    app = broker.app("children")

    @app.task(name="c.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="c.fan_async")
    async def fan_async() -> list[str]:
        first, second = await add.adelay(1, 2), await add.adelay(3, 4)
        await add.aapply_async((0, 0), add_to_parent=False)
        return [first.id, second.id]

    @app.task(name="c.fan_sync")
    def fan_sync() -> list[str]:
        return [add.delay(5, 6).id, add.apply_async((7, 8)).id]

    @app.task(name="c.fan_bulk")
    async def fan_bulk() -> list[str]:
        return [result.id for result in await app.asend_tasks([add.s(1, 2), add.s(3, 4)])]

    @app.task(name="c.lineage", bind=True)
    def lineage(self: Any) -> list[str | None]:
        return [self.request.parent_id, self.request.root_id]

    @app.task(name="c.send_lineage")
    async def send_lineage() -> str:
        return (await lineage.adelay()).id

    @app.task(name="c.no_trail", trail=False)
    async def no_trail() -> str:
        return (await add.adelay(1, 1)).id

    return app


@pytest.mark.parametrize("pool", ["asyncio", "threads"])
async def test_tasks_sent_from_a_body_are_its_children(broker: Broker, pool: str) -> None:
    app = make_app(broker)
    async with start_worker(app, pool=pool, concurrency=4):
        for name in ("c.fan_async", "c.fan_sync", "c.fan_bulk"):
            parent = await app.tasks[name].adelay()
            sent: list[str] = await parent.aget(timeout=TIMEOUT)
            assert [child.id for child in parent.children] == sent
            assert [await child.aget(timeout=TIMEOUT) for child in parent.children] in ([3, 7], [11, 15])
        parent = await app.tasks["c.send_lineage"].adelay()
        child = app.AsyncResult(await parent.aget(timeout=TIMEOUT))
        assert await child.aget(timeout=TIMEOUT) == [parent.id, parent.id]  # Celery's parent_id and root_id
        quiet = await app.tasks["c.no_trail"].adelay()
        await quiet.aget(timeout=TIMEOUT)
        assert quiet.children == []
    await app.aclose()


async def test_callbacks_and_the_next_chain_step_are_children(broker: Broker) -> None:
    app = make_app(broker)
    add = app.tasks["c.add"]
    async with start_worker(app, concurrency=2):
        last = await chain(add.s(1, 1), add.s(2), add.s(3)).aapply_async()
        assert await last.aget(timeout=TIMEOUT) == 7
        middle = last.parent
        first = middle.parent
        await first.aget(timeout=TIMEOUT)
        await middle.aget(timeout=TIMEOUT)
        assert [c.id for c in first.children] == [middle.id] and [c.id for c in middle.children] == [last.id]
        linked = await add.aapply_async((2, 2), link=add.s(10))
        assert await linked.aget(timeout=TIMEOUT) == 4
        (callback,) = linked.children
        assert await callback.aget(timeout=TIMEOUT) == 14
        collected: list[Any] = []
        for node, value in await _collect(first):
            collected.append((node.id, value))
        assert collected == [(first.id, 2), (middle.id, 4), (last.id, 7)]
    await app.aclose()


async def _collect(result: Any) -> list[tuple[Any, Any]]:
    """``collect()`` walks stored children with the sync API: run it off the loop."""
    import asyncio

    return await asyncio.to_thread(lambda: list(result.collect(timeout=TIMEOUT)))
