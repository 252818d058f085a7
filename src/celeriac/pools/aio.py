"""``-P asyncio``: ``async def`` bodies on the worker's loop; sync bodies in the pool's own threads."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from celeriac.pools.base import Pool, bounded
from celeriac.pools.call import Call
from celeriac.pools.lanes import ThreadLanes

if TYPE_CHECKING:
    from celeriac.app.registry import TaskRegistry
    from celeriac.app.task import Task


class AsyncioPool(Pool):
    """Concurrency = tasks in flight on the loop; sync bodies each get a thread (`ThreadLanes`)."""

    implementation = "asyncio"

    def __init__(self, concurrency: int, tasks: TaskRegistry) -> None:
        super().__init__(concurrency, tasks)
        self._lanes = ThreadLanes("celeriac-sync", lambda: self.concurrency)

    def cancellable(self, task: Task[Any, Any]) -> bool:
        """Async bodies run on the worker's loop: cancelling their task stops them."""
        return task.is_async

    async def run_body(self, task: Task[Any, Any], call: Call) -> Any:
        if task.is_async:
            return await bounded(task(*call.args, **call.kwargs), call.time_limit, call.task)
        body = functools.partial(task.__call__, *call.args, **call.kwargs)
        return await self._lanes.run(body, call.time_limit, call.task)

    async def close(self) -> None:
        self._lanes.close()
