"""Canvas on a real in-process worker, once on SQLite and once on Redis (broker and results): chain, group,
chord, a chord with a failing header, ``group | chord``, chunks/map/starmap, links, replace, saved groups."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster import Broker

from celeriac import App, ChordError, GroupResult, UnknownTask, chain, chord, group, signature
from celeriac.errors import CanvasError
from celeriac.protocol.codec import decode_task, encode_task
from celeriac.testing import start_worker, wait_for

TIMEOUT = 20


def make_app(broker: Broker) -> tuple[App, dict[str, Any]]:
    app = broker.app("canvas")
    seen: dict[str, Any] = {"errbacks": [], "collected": []}

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.mul")
    async def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="t.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="t.boom")
    def boom(*args: Any) -> None:
        raise ValueError("boom")

    @app.task(name="t.on_error")
    def on_error(task_id: str) -> None:
        seen["errbacks"].append(task_id)

    @app.task(name="t.collect")
    def collect(value: Any) -> Any:
        seen["collected"].append(value)
        return value

    @app.task(name="t.swap", bind=True)
    def swap(self: Any, x: int) -> None:
        self.replace(app.tasks["t.add"].s(x, 1000))

    return app, seen


async def test_chain_group_chord(broker: Broker) -> None:
    app, _ = make_app(broker)
    add, mul, tsum = app.tasks["t.add"], app.tasks["t.mul"], app.tasks["t.tsum"]
    async with start_worker(app, concurrency=4):
        res = await chain(add.s(1, 1), add.s(2), mul.s(10)).aapply_async()
        assert await res.aget(timeout=TIMEOUT) == 40
        assert await res.parent.aget(timeout=TIMEOUT) == 4
        assert await res.parent.parent.aget(timeout=TIMEOUT) == 2

        res = await (add.s(2, 2) | add.si(5, 5)).aapply_async()  # immutable: the parent's result is not taken
        assert await res.aget(timeout=TIMEOUT) == 10

        g = await group(add.s(i, i) for i in range(5)).aapply_async()
        assert isinstance(g, GroupResult) and len(g) == 5
        assert await g.aget(timeout=TIMEOUT) == [0, 2, 4, 6, 8]
        assert await g.acompleted_count() == 5 and await g.aready()

        c = await chord([add.s(i, i) for i in range(4)], tsum.s()).aapply_async()
        assert await c.aget(timeout=TIMEOUT) == 12
        assert await c.parent.aget(timeout=TIMEOUT) == [0, 2, 4, 6]

        empty = await chord([], tsum.s()).aapply_async()
        assert await empty.aget(timeout=TIMEOUT) == 0

        # group | chord: the group's results go to every header task of the chord, whose body sums
        inner = chord([tsum.s(), tsum.s()], tsum.s())
        res = await (group(add.s(1, 1), add.s(2, 2)) | inner).aapply_async()
        assert await res.aget(timeout=TIMEOUT) == 12

        # a chain whose middle is a group: upgraded to a chord, the rest goes on after the body
        res = await chain(add.s(1, 2), group(add.s(1), add.s(2)), tsum.s(), mul.s(2)).aapply_async()
        assert await res.aget(timeout=TIMEOUT) == 2 * (4 + 5)


async def test_failures_links_and_errbacks(broker: Broker) -> None:
    app, seen = make_app(broker)
    add, tsum, boom = app.tasks["t.add"], app.tasks["t.tsum"], app.tasks["t.boom"]
    on_error, collect = app.tasks["t.on_error"], app.tasks["t.collect"]
    async with start_worker(app, concurrency=4):
        res = await add.aapply_async((2, 3), link=collect.s(), link_error=on_error.s())
        assert await res.aget(timeout=TIMEOUT) == 5
        await wait_for(lambda: seen["collected"] == [5])

        bogus = {"task": "t.collect", "args": [], "kwargs": {}, "options": {}, "subtask_type": "bogus"}
        odd = await add.aapply_async((1, 2), link=[bogus, collect.s()])
        assert await odd.aget(timeout=TIMEOUT) == 3  # a malformed step is logged and skipped, the rest runs
        await wait_for(lambda: seen["collected"] == [5, 3])

        failing = await boom.aapply_async((), link=collect.s(), link_error=on_error.s())
        with pytest.raises(ValueError):
            await failing.aget(timeout=TIMEOUT)
        await wait_for(lambda: seen["errbacks"] == [failing.id])

        c = chord([add.s(1, 1), boom.s(), add.s(2, 2)], tsum.s())
        c.link_error(on_error.s())
        res = await c.aapply_async()
        with pytest.raises(ChordError, match=r"Dependency .* raised ValueError"):
            await res.aget(timeout=TIMEOUT)
        await wait_for(lambda: res.id in seen["errbacks"])  # the chord's errback ran, once, for the body

        res = await chain(add.s(1, 1), signature("t.unregistered", app=app), add.s(5)).aapply_async()
        with pytest.raises(UnknownTask, match=r"t\.unregistered"):  # FAILURE at the worker, the chain stops
            await res.parent.aget(timeout=TIMEOUT)

        res = await chain(add.s(1, 1), boom.s(), add.s(5)).aapply_async()
        with pytest.raises(ValueError):
            await res.parent.aget(timeout=TIMEOUT)
        assert (await res.ameta())["status"] == "PENDING"  # the step after a failure never ran


async def test_maps_chunks_replace_and_saved_groups(broker: Broker) -> None:
    app, _ = make_app(broker)
    add, mul, swap, tsum = app.tasks["t.add"], app.tasks["t.mul"], app.tasks["t.swap"], app.tasks["t.tsum"]
    async with start_worker(app, concurrency=4):
        assert await (await tsum.map([[1, 2], [3]]).aapply_async()).aget(timeout=TIMEOUT) == [3, 3]
        assert await (await mul.starmap([(2, 3), (4, 5)]).aapply_async()).aget(timeout=TIMEOUT) == [6, 20]
        parts = await add.chunks([(i, i) for i in range(7)], 3).aapply_async()
        assert await parts.aget(timeout=TIMEOUT) == [[0, 2, 4], [6, 8, 10], [12]]

        res = await (swap.s(1) | add.s(1)).aapply_async()  # the replacement takes the chain's rest along
        assert await res.aget(timeout=TIMEOUT) == 1002

        g = await group(add.s(1, 2), add.s(3, 4)).aapply_async()
        await g.asave()
        restored = await GroupResult.arestore(g.id, app=app)
        assert restored is not None and await restored.aget(timeout=TIMEOUT) == [3, 7]


async def test_messages_carry_celery_embed(broker: Broker) -> None:
    """The wire shape (celery-wire.md §1.3): chain reversed, chord body with chord_size, group headers."""
    app, _ = make_app(broker)
    add, tsum = app.tasks["t.add"], app.tasks["t.tsum"]
    sig = add.s(2).set(queue="q1")
    assert json.loads(json.dumps(sig)) == {
        "task": "t.add", "args": [2], "kwargs": {}, "options": {"queue": "q1"}, "subtask_type": None,
        "immutable": False,
    }  # fmt: skip
    assert signature(json.loads(json.dumps(chord([add.s(1, 1)], tsum.s())))).subtask_type == "chord"
    steps = [add.s(1, 1), add.s(2), add.s(3)]
    for step in steps[1:]:
        step.freeze()
    message = app.build_message("t.add", (1, 1), chain=[dict(steps[2]), dict(steps[1])], group_id="g", group_index=1)
    decoded = decode_task(encode_task(message), frozenset({"application/json"}))
    assert decoded.embed["chain"] == [json.loads(json.dumps(steps[2])), json.loads(json.dumps(steps[1]))]
    assert (decoded.group, decoded.group_index) == ("g", 1)
    with pytest.raises(CanvasError):
        chord([chain(add.s(1, 1), add.s(1))], tsum.s()).apply_async()
    with pytest.raises(ValueError, match="not supported"):
        add.s(1, 1).set(bogus=1).apply_async()


async def test_duplicate_header_results_run_the_body_once(broker: Broker) -> None:
    """Each header message delivered twice (a redelivery after a lost ack): the body still runs once."""
    app, seen = make_app(broker)
    collect = app.tasks["t.collect"]
    body = collect.s()
    result = body.freeze()
    body.chord_size = 2
    gid = f"dup-{result.id}"
    await (await app.abackend()).chord_start(gid, 2)
    producer = await app.aproducer()
    for i in (0, 1):
        message = app.build_message("t.add", (i, i), task_id=f"{gid}-{i}", group_id=gid, group_index=i, chord=body)
        for _ in range(2):
            await producer.publish(encode_task(message), "celery", "celery")
    async with start_worker(app, concurrency=2) as worker:
        assert await result.aget(timeout=TIMEOUT) == [0, 2]
        await wait_for(lambda: worker.state.total.get("t.add", 0) == 4, timeout=TIMEOUT)
    assert seen["collected"] == [[0, 2]]
