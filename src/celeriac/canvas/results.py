"""ResultSet and GroupResult: many task results read as one (a group's, a chord header's).

Every blocking method has an async twin (``get``/``aget``, ``join``/``ajoin``, ...). ``save``/``restore``
keep a group's member ids in the result backend (Celery's ``celery-taskset-meta-<id>`` on Redis), so
another process can rebuild the `GroupResult` from its id.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from celeriac._portal import portal
from celeriac.backends.base import TaskMeta
from celeriac.canvas.host import CanvasHost, current_host
from celeriac.errors import TimeoutError

READY = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


class ResultLike(Protocol):
    """What a member result offers (``celeriac.app.result.AsyncResult`` does)."""

    id: str

    async def ameta(self) -> TaskMeta:
        """The stored record."""

    async def aget(self, timeout: float | None = None, propagate: bool = True) -> Any:
        """Wait for the value."""


class ResultSet:
    """An ordered set of results: ready when all are, ``get`` returns their values in order."""

    def __init__(self, results: Sequence[Any], app: CanvasHost | None = None) -> None:
        self.results: list[Any] = list(results)
        self._app = app

    @property
    def app(self) -> CanvasHost:
        """The app the results are read through."""
        return self._app or current_host()

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(r.id for r in self.results)}]>"

    def add(self, result: Any) -> None:
        """Add a result (no duplicates)."""
        if result not in self.results:
            self.results.append(result)

    # -- async core ------------------------------------------------------------------------------
    async def astates(self) -> list[str]:
        """Each member's state, in order."""
        return [(await r.ameta())["status"] for r in self.results]

    async def aready(self) -> bool:
        """True once every member is ready."""
        return all(state in READY for state in await self.astates())

    async def acompleted_count(self) -> int:
        """How many members succeeded."""
        return sum(state == "SUCCESS" for state in await self.astates())

    async def ajoin(self, timeout: float | None = None, propagate: bool = True) -> list[Any]:
        """Every member's value, in order; the first failure is raised when ``propagate``.

        ``timeout`` bounds the whole join, not each member.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"the results of {self!r} were not ready within {timeout}s")
            values.append(await result.aget(timeout=left, propagate=propagate))
        return values

    aget = ajoin

    # -- sync facades ----------------------------------------------------------------------------
    def join(self, timeout: float | None = None, propagate: bool = True) -> list[Any]:
        """Block until every member is ready; their values in order (see `ajoin`)."""
        return portal.run(self.ajoin(timeout, propagate))

    get = join

    def ready(self) -> bool:
        """True once every member is ready."""
        return portal.run(self.aready())

    def successful(self) -> bool:
        """True when every member succeeded."""
        return all(state == "SUCCESS" for state in portal.run(self.astates()))

    def failed(self) -> bool:
        """True when any member failed."""
        return any(state == "FAILURE" for state in portal.run(self.astates()))

    def completed_count(self) -> int:
        """How many members succeeded."""
        return portal.run(self.acompleted_count())


class GroupResult(ResultSet):
    """The results of a group (id: the group id), in the group's order."""

    def __init__(self, id: str, results: Sequence[Any], app: CanvasHost | None = None) -> None:
        super().__init__(results, app)
        self.id = id
        self.parent: Any = None

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupResult) and other.id == self.id and other.results == self.results

    def __hash__(self) -> int:
        return hash(self.id)

    def as_tuple(self) -> list[Any]:
        """Celery's tuple form: ``[[id, parent], [member tuples]]``."""
        return [[self.id, None], [[[r.id, None], None] for r in self.results]]

    async def asave(self) -> None:
        """Keep the member ids in the result backend (``result_expires`` applies)."""
        backend = await self.app.abackend()
        await backend.save_group(self.id, {"result": self.as_tuple()})

    def save(self) -> None:
        """Blocking twin of `asave`."""
        portal.run(self.asave())

    @classmethod
    async def arestore(cls, id: str, app: CanvasHost | None = None) -> GroupResult | None:
        """The saved group ``id`` (None when it was never saved or has expired)."""
        host = app or current_host()
        backend = await host.abackend()
        saved = await backend.restore_group(id)
        if saved is None:
            return None
        members = saved["result"][1]
        return cls(id, [host.AsyncResult(member[0][0]) for member in members], app=host)

    @classmethod
    def restore(cls, id: str, app: CanvasHost | None = None) -> GroupResult | None:
        """Blocking twin of `arestore`."""
        return portal.run(cls.arestore(id, app))

    async def aforget(self) -> None:
        """Delete the saved group."""
        backend = await self.app.abackend()
        await backend.forget_group(self.id)
