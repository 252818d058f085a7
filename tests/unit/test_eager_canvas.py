"""Eager canvas (no broker, no backend): ``apply()`` and ``task_always_eager`` run signatures, chains, groups and
chords here, callbacks and both styles of errbacks included, with Celery's results and failure rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import App, ChordError, GroupResult, chain, chord, group


@pytest.fixture
def app() -> Iterator[App]:
    made = App("eager", broker="memory-is-never-opened://")
    made.conf.task_always_eager = True
    yield made


def build(app: App) -> dict[str, Any]:
    seen: dict[str, list[Any]] = {"collected": [], "errbacks": [], "old": []}

    @app.task(name="e.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="e.mul")
    async def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="e.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="e.boom")
    def boom(*args: Any) -> None:
        raise ValueError("boom")

    @app.task(name="e.collect")
    def collect(value: Any) -> Any:
        seen["collected"].append(value)
        return value

    @app.task(name="e.on_error")
    def on_error(task_id: str) -> None:
        seen["errbacks"].append(task_id)

    @app.task(name="e.old_errback")
    def old_errback(request: Any, exc: BaseException, traceback: str | None) -> None:
        seen["old"].append((request.id, repr(exc)))

    tasks = (add, mul, tsum, boom, collect, on_error, old_errback)
    return {"seen": seen, **{task.name.split(".")[1]: task for task in tasks}}


def test_chain_group_chord_run_here_with_their_results(app: App) -> None:
    t = build(app)
    add, mul, tsum = t["add"], t["mul"], t["tsum"]
    res = chain(add.s(1, 1), add.s(2), mul.s(10)).apply_async()
    assert res.get() == 40 and res.parent.get() == 4 and res.parent.parent.get() == 2
    g = group(add.s(i, i) for i in range(4)).apply_async()
    assert isinstance(g, GroupResult) and g.get() == [0, 2, 4, 6]
    assert chord([add.s(1, 2), mul.s(3, 4)], tsum.s()).apply_async().get() == 15
    both = group(add.s(1, 1), add.s(2, 2)) | chord([tsum.s(), tsum.s()], tsum.s())
    assert both.apply_async().get() == 12
    assert chain(add.s(1, 1), group(add.s(1), add.s(2)), tsum.s()).apply_async().get() == 7
    assert add.s(2, 2).apply().get() == 4  # apply() without task_always_eager too


def test_links_errbacks_and_failures(app: App) -> None:
    t = build(app)
    add, boom, collect, on_error, old = t["add"], t["boom"], t["collect"], t["on_error"], t["old_errback"]
    seen = t["seen"]
    assert add.apply_async((2, 3), link=collect.s()).get() == 5
    assert add.delay(1, 1).get() == 2 and seen["collected"] == [5]
    failed = boom.apply_async((), link=collect.s(), link_error=[on_error.s(), old.s()])
    assert failed.state == "FAILURE" and isinstance(failed.result, ValueError)
    assert seen["errbacks"] == [failed.id] and seen["old"] == [(failed.id, "ValueError('boom')")]
    assert seen["collected"] == [5]  # the callback of a failed task never runs
    stopped = chain(add.s(1, 1), boom.s(), collect.s()).apply_async()
    assert stopped.state == "FAILURE" and seen["collected"] == [5]  # the step after a failure never ran
    c = chord([add.s(1, 1), boom.s(), add.s(2, 2)], t["tsum"].s())
    c.link_error(on_error.s())
    res = c.apply_async()
    assert res.state == "FAILURE" and isinstance(res.result, ChordError) and "raised ValueError" in str(res.result)
    assert seen["errbacks"][-1] == res.id
    app.conf.task_eager_propagates = True
    with pytest.raises(ChordError):
        c.apply_async()
    with pytest.raises(ValueError, match="boom"):
        chain(add.s(1, 1), boom.s()).apply()


def test_unknown_names_are_refused(app: App) -> None:
    t = build(app)
    with pytest.raises(TypeError, match="did you mean 'queue'"):
        t["add"].s(1, 1).apply(queu="x")
    from celeriac import signature
    from celeriac.errors import UnknownTask

    with pytest.raises(UnknownTask, match="not registered in this app"):
        chain(t["add"].s(1, 1), signature("e.nowhere", app=app)).apply_async()
