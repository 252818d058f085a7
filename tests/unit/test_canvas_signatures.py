"""Canvas as data (no broker): Celery's dict shape both ways, partial arguments, chain normalisation, refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery import Celery  # type: ignore[import-untyped]
from celery.canvas import Signature as CelerySignature  # type: ignore[import-untyped]

from celeriac import App, CanvasError, chain, chord, group, signature
from celeriac.backends.base import ChordMember, ResultBackend
from celeriac.canvas import GroupResult, Signature
from celeriac.errors import ConfigurationError


@pytest.fixture
def app() -> App:
    app = App("canvas-unit", broker="sqlite:///:memory:")

    @app.task(name="u.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def wire(value: Any) -> Any:
    return json.loads(json.dumps(value))


def test_signature_is_celerys_dict(app: App) -> None:
    add = app.tasks["u.add"]
    sig = add.s(1).set(queue="q")
    assert wire(sig) == {
        "task": "u.add", "args": [1], "kwargs": {}, "options": {"queue": "q"}, "subtask_type": None,
        "immutable": False,
    }  # fmt: skip
    theirs = CelerySignature.from_dict(wire(sig), app=Celery(set_as_current=False))
    assert (theirs.task, tuple(theirs.args), theirs.options) == ("u.add", (1,), {"queue": "q"})
    for made in (chain(add.s(1, 1), add.s(2)), group(add.s(1, 1)), chord([add.s(1, 1)], add.s(2))):
        kind = made.subtask_type
        back = signature(wire(made), app=app)
        assert type(back) is type(made) and back.subtask_type == kind
        assert CelerySignature.from_dict(wire(made), app=Celery(set_as_current=False)).subtask_type == kind


def test_partial_arguments_merge_as_celerys(app: App) -> None:
    add = app.tasks["u.add"]
    merged = add.s(2, z=1).clone((10,), {"z": 2, "w": 3}, queue="q")
    assert (merged.args, merged.kwargs, merged.options) == ((10, 2), {"z": 2, "w": 3}, {"queue": "q"})
    assert add.si(1, 2).clone((10,)).args == (1, 2)  # immutable: no parent's result
    assert add.s(1)(2) == 3  # called here: the merged arguments


def test_chain_steps_normalised(app: App) -> None:
    add = app.tasks["u.add"]
    steps = chain(add.s(1, 1), chain(add.s(1), add.s(2)), group(add.s(1), add.s(2)), add.s(3), add.s(4)).steps()
    assert [s.subtask_type for s in steps] == [None, None, None, "chord"]
    last = steps[-1]
    assert isinstance(last, chord) and last.body is not None and last.body.subtask_type == "chain"
    result = chain(add.s(1, 1), add.s(2)).freeze()
    assert result.parent is not None and result.parent.id != result.id


def test_one_signature_twice_gets_two_ids(app: App) -> None:
    add = app.tasks["u.add"].s(1, 1)
    frozen = group(add, add).freeze()
    assert isinstance(frozen, GroupResult) and len({r.id for r in frozen.results}) == 2


def test_refusals(app: App) -> None:
    add = app.tasks["u.add"]
    a, b = add.s(1, 1), add.s(2)
    a.link(b)
    b.link(a)
    with pytest.raises(CanvasError, match="cycle"):
        a.apply_async()
    with pytest.raises(CanvasError, match="chord"):
        group(add.s(1, 1)).link(add.s())
    with pytest.raises(ValueError, match="unknown canvas subtask_type"):
        Signature.from_dict({"task": "x", "subtask_type": "nope"})


class NoChords(ResultBackend):
    """A backend that keeps results but cannot join chords (as rpc:// cannot)."""

    url = "rpc://"

    async def connect(self) -> None: ...
    async def close(self) -> None: ...
    async def store(self, meta: Any, expires: float | None = None) -> None: ...
    async def get_meta(self, task_id: str) -> Any: ...
    async def wait(self, task_id: str, timeout: float | None = None) -> Any: ...
    async def forget(self, task_id: str) -> None: ...
    async def join_add(self, *args: Any, **kwargs: Any) -> Any: ...
    async def acquire_lease(self, *args: Any) -> Any: ...
    async def renew_lease(self, *args: Any) -> Any: ...
    async def release_lease(self, *args: Any) -> Any: ...
    async def record_fenced(self, *args: Any) -> Any: ...
    async def read_fenced(self, *args: Any) -> Any: ...


async def test_a_backend_that_cannot_join_refuses_chords() -> None:
    from celeriac.backends.base import BackendOptions

    backend = NoChords(BackendOptions())
    with pytest.raises(ConfigurationError, match="cannot join chords"):
        await backend.chord_start("g", 2)
    with pytest.raises(ConfigurationError, match="cannot join chords"):
        await backend.chord_part("g", 0, ChordMember("t", "SUCCESS", 1), 2, 30.0)
