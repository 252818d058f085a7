"""xmap, xstarmap, chunks: one task applied to many argument sets, as Celery's builtin tasks do it.

``task.map(it)`` sends one ``celery.map`` message whose worker calls the task's function for each item, in
one process, returning the list; ``starmap`` does the same with argument tuples; ``task.chunks(it, n)`` is a
group of ``celery.starmap`` messages, ``n`` items each. The worker side is `celeriac.worker.canvas`'s
builtin tasks, registered under Celery's names so a Celery client's maps run here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from celeriac.canvas.host import CanvasHost
from celeriac.canvas.primitives import group
from celeriac.canvas.signature import Signature


class xmap(Signature):
    """``task`` called with each item of ``it`` by one worker; the list of results."""

    task_name = "celery.map"
    kind = "xmap"

    def __init__(self, task: Mapping[str, Any], it: Iterable[Any], app: CanvasHost | None = None, **options: Any):
        items = [list(i) if isinstance(i, tuple) else i for i in it]
        fields = {"task": dict(task), "it": items}
        super().__init__(self.task_name, (), fields, options, subtask_type=self.kind, immutable=True, app=app)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: CanvasHost | None = None) -> Signature:
        return cls(d["kwargs"]["task"], d["kwargs"]["it"], app=app, **(d.get("options") or {}))


class xstarmap(xmap):
    """``task`` called with each argument tuple of ``it`` by one worker; the list of results."""

    task_name = "celery.starmap"
    kind = "xstarmap"


class chunks(Signature):
    """``it`` cut into parts of ``n`` argument tuples, each a ``celery.starmap`` task: a group of them."""

    def __init__(
        self, task: Mapping[str, Any], it: Iterable[Any], n: int, app: CanvasHost | None = None, **options: Any
    ) -> None:
        if int(n) < 1:
            raise ValueError(f"chunks need a size of at least 1, not {n}")
        fields = {"task": dict(task), "it": [list(i) for i in it], "n": int(n)}
        super().__init__("celery.chunks", (), fields, options, subtask_type="chunks", immutable=True, app=app)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: CanvasHost | None = None) -> Signature:
        kw = d["kwargs"]
        return cls(kw["task"], kw["it"], kw["n"], app=app, **(d.get("options") or {}))

    def group(self) -> group:
        """The group of ``celery.starmap`` tasks this stands for."""
        kw = self["kwargs"]
        items, n = kw["it"], kw["n"]
        parts = [items[i : i + n] for i in range(0, len(items), n)]
        return group([xstarmap(kw["task"], part, app=self._app) for part in parts], app=self._app, **self.options)

    async def aapply_async(
        self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **opts: Any
    ) -> Any:
        """Send the group of parts; its `GroupResult` (one list of results per part)."""
        return await self.group().aapply_async(None, None, **opts)


Signature.TYPES.update(xmap=xmap, xstarmap=xstarmap, chunks=chunks)
