"""Step and Blueprint: order steps by ``requires``, start them in order, stop the started ones in reverse.

A step is a small class with a ``requires`` tuple of other step *classes*. The blueprint includes every step
whose ``include_if`` says yes, sorts them topologically (ties keep the order they were given in), and refuses
a cycle or a missing requirement at start-up with an error that names the steps.

Which steps live with the broker connection is decided by the blueprint they are in, not by a flag: the
consumer restarts all of its steps on reconnect, the worker's own steps (timer, pool, state db) run on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from celeriac.errors import ConfigurationError

log = logging.getLogger(__name__)

ParentT = TypeVar("ParentT")
S = TypeVar("S", bound="Step[Any]")


class Step(Generic[ParentT]):
    """One piece of a worker or consumer. Subclasses override what they need.

    ``start`` may block only as long as starting takes; long-running work goes into tasks the step owns.
    ``stop`` is graceful (warm shutdown), ``terminate`` immediate (cold shutdown; defaults to ``stop``).
    """

    requires: ClassVar[tuple[type[Step[Any]], ...]] = ()

    @property
    def name(self) -> str:
        """The step's name in logs and errors."""
        return type(self).__name__

    def include_if(self, parent: ParentT) -> bool:
        """Whether this step takes part for ``parent`` (default: always)."""
        return True

    async def start(self, parent: ParentT) -> None:
        """Start the step."""

    async def stop(self, parent: ParentT) -> None:
        """Stop gracefully."""

    async def terminate(self, parent: ParentT) -> None:
        """Stop now; by default the same as `stop`."""
        await self.stop(parent)


def order_steps(steps: Sequence[type[Step[Any]]]) -> list[type[Step[Any]]]:
    """The steps in dependency order; ConfigurationError naming the steps on a cycle or missing step."""
    present = set(steps)
    for step in steps:
        missing = [req.__name__ for req in step.requires if req not in present]
        if missing:
            raise ConfigurationError(f"step {step.__name__} requires {', '.join(missing)}, which is not included")
    ordered: list[type[Step[Any]]] = []
    state: dict[type[Step[Any]], str] = {}

    def visit(step: type[Step[Any]], path: list[type[Step[Any]]]) -> None:
        if state.get(step) == "done":
            return
        if state.get(step) == "visiting":
            cycle = [*path[path.index(step) :], step]
            raise ConfigurationError("bootstep cycle: " + " -> ".join(s.__name__ for s in cycle))
        state[step] = "visiting"
        for req in step.requires:
            visit(req, [*path, step])
        state[step] = "done"
        ordered.append(step)

    for step in steps:
        visit(step, [])
    return ordered


class Blueprint(Generic[ParentT]):
    """An ordered set of steps for one parent (the Worker or the Consumer)."""

    def __init__(self, name: str, step_types: Iterable[type[Step[ParentT]]]) -> None:
        self.name = name
        self._types = list(dict.fromkeys(step_types))
        self.steps: list[Step[ParentT]] = []
        self.started: list[Step[ParentT]] = []

    def apply(self, parent: ParentT) -> list[Step[ParentT]]:
        """Instantiate, filter by ``include_if`` and order the steps; raises on a cycle or missing step."""
        instances = {cls: cls() for cls in self._types}
        included = [cls for cls, step in instances.items() if step.include_if(parent)]
        ordered: list[type[Step[Any]]] = order_steps(included)
        self.steps = [instances[cls] for cls in ordered]
        return self.steps

    def get(self, step_type: type[S]) -> S:
        """The included instance of ``step_type``; LookupError when it is not part of this blueprint."""
        for step in self.steps:
            if isinstance(step, step_type):
                return step
        raise LookupError(f"{self.name} has no step {step_type.__name__}")

    def has(self, step_type: type[Step[Any]]) -> bool:
        """Whether an instance of ``step_type`` is included."""
        return any(isinstance(step, step_type) for step in self.steps)

    async def start(self, parent: ParentT, only: Sequence[Step[ParentT]] | None = None) -> None:
        """Start the steps (or ``only`` those) in order; on failure stop what started, then re-raise."""
        for step in only if only is not None else self.steps:
            log.debug("%s: starting %s", self.name, step.name)
            try:
                await step.start(parent)
            except BaseException:
                await self.stop(parent)
                raise
            self.started.append(step)

    async def stop(self, parent: ParentT, terminate: bool = False) -> None:
        """Stop the started steps in reverse order; one step's failure does not keep the others running."""
        for step in reversed(list(self.started)):
            self.started.remove(step)
            log.debug("%s: stopping %s", self.name, step.name)
            try:
                await (step.terminate(parent) if terminate else step.stop(parent))
            except Exception:
                log.exception("%s: error while stopping step %s", self.name, step.name)
