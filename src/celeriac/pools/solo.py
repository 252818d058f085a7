"""``-P solo``: one task at a time; a sync body runs in one dedicated thread while the worker's loop waits for it.

The loop stays free while the body runs, so lease renewal, heartbeats and control replies go on (a sync body
that blocked the loop let a Redis visibility timeout hand its message to another worker). The body still runs
on a real thread, one at a time, so a debugger stops right in it. ``async def`` bodies run on the loop itself.
"""

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


class SoloPool(Pool):
    """Concurrency is always 1; a sync body runs in the pool's one thread (replaced only if written off)."""

    implementation = "solo"

    def __init__(self, concurrency: int, tasks: TaskRegistry, conf: Settings | None = None) -> None:
        super().__init__(1, tasks, conf)
        self._lanes = ThreadLanes("celeriac-solo", lambda: 1)

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
