"""Bootsteps: order by requires, include_if, start in order, stop in reverse, cycles and missing steps named."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac.errors import ConfigurationError
from celeriac.worker.bootsteps import Blueprint, Step, order_steps


class Parent:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.skip_optional = False


class Recorder(Step[Parent]):
    async def start(self, parent: Parent) -> None:
        parent.log.append(f"start {self.name}")

    async def stop(self, parent: Parent) -> None:
        parent.log.append(f"stop {self.name}")

    async def terminate(self, parent: Parent) -> None:
        parent.log.append(f"terminate {self.name}")


class A(Recorder):
    pass


class B(Recorder):
    requires = (A,)


class C(Recorder):
    requires = (B, A)


class Optional(Recorder):
    requires = (A,)

    def include_if(self, parent: Parent) -> bool:
        return not parent.skip_optional


class Broken(Recorder):
    requires = (A,)

    async def start(self, parent: Parent) -> None:
        raise RuntimeError("cannot start")


async def test_starts_in_dependency_order_and_stops_in_reverse() -> None:
    parent = Parent()
    blueprint = Blueprint[Parent]("test", [C, B, A])
    blueprint.apply(parent)
    await blueprint.start(parent)
    await blueprint.stop(parent)
    assert parent.log == ["start A", "start B", "start C", "stop C", "stop B", "stop A"]


async def test_terminate_uses_terminate() -> None:
    parent = Parent()
    blueprint = Blueprint[Parent]("test", [A, B])
    blueprint.apply(parent)
    await blueprint.start(parent)
    await blueprint.stop(parent, terminate=True)
    assert parent.log[-2:] == ["terminate B", "terminate A"]


async def test_include_if_leaves_a_step_out() -> None:
    parent = Parent()
    parent.skip_optional = True
    blueprint = Blueprint[Parent]("test", [A, Optional])
    blueprint.apply(parent)
    assert not blueprint.has(Optional)
    await blueprint.start(parent)
    assert parent.log == ["start A"]


async def test_failed_start_stops_what_started_and_reraises() -> None:
    parent = Parent()
    blueprint = Blueprint[Parent]("test", [A, Broken])
    blueprint.apply(parent)
    with pytest.raises(RuntimeError, match="cannot start"):
        await blueprint.start(parent)
    assert parent.log == ["start A", "stop A"]


def test_missing_requirement_is_named() -> None:
    with pytest.raises(ConfigurationError, match="step B requires A, which is not included"):
        order_steps([B])


def test_cycle_is_named() -> None:
    class X(Step[Any]):
        pass

    class Y(Step[Any]):
        requires = (X,)

    X.requires = (Y,)
    with pytest.raises(ConfigurationError, match=r"bootstep cycle: (X -> Y -> X|Y -> X -> Y)"):
        order_steps([X, Y])


def test_get_returns_the_typed_instance() -> None:
    blueprint = Blueprint[Parent]("test", [A, B])
    blueprint.apply(Parent())
    assert isinstance(blueprint.get(B), B)
    with pytest.raises(LookupError):
        blueprint.get(C)


def test_short_public_paths() -> None:
    from celeriac import testing, worker
    from celeriac.worker.bootsteps import Blueprint, Step
    from celeriac.worker.worker import Worker

    assert (worker.Worker, worker.Step, worker.Blueprint) == (Worker, Step, Blueprint)
    assert sorted(worker.__all__) == ["Blueprint", "Step", "Worker"]
    assert callable(testing.start_worker) and callable(testing.wait_for)
