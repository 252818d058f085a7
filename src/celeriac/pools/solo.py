"""``-P solo``: one task at a time, inline on the worker's thread (a debugger stops right in the body)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from celeriac.pools.base import Pool

if TYPE_CHECKING:
    from celeriac.app.registry import TaskRegistry
    from celeriac.app.task import Task


class SoloPool(Pool):
    """Concurrency is always 1; a sync body blocks the worker loop while it runs, as Celery's solo pool does."""

    implementation = "solo"

    def __init__(self, concurrency: int, tasks: TaskRegistry) -> None:
        super().__init__(1, tasks)

    def cancellable(self, task: Task[Any, Any]) -> bool:
        """Async bodies run on the worker's loop: cancelling their task stops them."""
        return task.is_async

    async def run_body(self, task: Task[Any, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        if task.is_async:
            return await task(*args, **kwargs)
        return task(*args, **kwargs)
