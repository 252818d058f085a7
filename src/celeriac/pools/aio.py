"""``-P asyncio``: ``async def`` bodies on the worker's loop; sync bodies in the pool's own threads."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from celeriac.pools.base import Pool
from celeriac.pools.call import Call
from celeriac.pools.lanes import ThreadLanes
from celeriac.pools.limits import limited

if TYPE_CHECKING:
    from celeriac.app.registry import TaskRegistry
    from celeriac.app.task import Task
    from celeriac.settings import Settings


class AsyncioPool(Pool):
    """Concurrency = tasks in flight on the loop; sync bodies each get a thread (`ThreadLanes`)."""

    implementation = "asyncio"

    def __init__(self, concurrency: int, tasks: TaskRegistry, conf: Settings | None = None) -> None:
        super().__init__(concurrency, tasks, conf)
        self._lanes = ThreadLanes("celeriac-sync", lambda: self.concurrency)

    def cancellable(self, task: Task[Any, Any]) -> bool:
        """Async bodies are cancelled on the loop; a sync body's thread gets SystemExit at its next bytecode."""
        return True

    async def run_body(self, task: Task[Any, Any], call: Call) -> Any:
        if task.is_async:
            return await limited(task(*call.args, **call.kwargs), call.soft_time_limit, call.time_limit, call.task)
        body = functools.partial(task.__call__, *call.args, **call.kwargs)
        return await self._lanes.run(body, call.time_limit, call.task, soft=call.soft_time_limit)

    async def close(self) -> None:
        self._lanes.close()
