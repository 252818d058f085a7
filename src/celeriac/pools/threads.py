"""``-P threads``: every body runs in a thread of its own while it runs (`ThreadLanes`).

A sync body is called in the thread; an ``async def`` body runs on that thread's own event loop (kept for the
thread's life), so a body that blocks cannot stall the worker's loop. An async body is cancelled at its hard
limit on that loop; a body that still does not end (blocked in sync code) is written off a moment later.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from celeriac.pools.base import Pool
from celeriac.pools.call import Call
from celeriac.pools.lanes import ThreadLanes, lane_loop
from celeriac.pools.limits import limited

if TYPE_CHECKING:
    from celeriac.app.registry import TaskRegistry
    from celeriac.app.task import Task
    from celeriac.settings import Settings

#: How long an async body cancelled at its limit on its thread's loop gets to end before the thread is written off.
ASYNC_GRACE = 1.0


def _call(task: Task[Any, Any], call: Call) -> Any:
    if not task.is_async:
        return task(*call.args, **call.kwargs)
    body = limited(task(*call.args, **call.kwargs), call.soft_time_limit, call.time_limit, call.task)
    return lane_loop().run_until_complete(body)


class ThreadPool(Pool):
    """Concurrency = threads running bodies (a written-off thread is replaced, so not counted)."""

    implementation = "threads"

    def __init__(self, concurrency: int, tasks: TaskRegistry, conf: Settings | None = None) -> None:
        super().__init__(concurrency, tasks, conf)
        self._lanes = ThreadLanes("celeriac-thread", lambda: self.concurrency)

    def cancellable(self, task: Task[Any, Any]) -> bool:
        """A body's thread gets SystemExit at its next bytecode (one blocked in C code sees it later)."""
        return True

    async def run_body(self, task: Task[Any, Any], call: Call) -> Any:
        grace = ASYNC_GRACE if task.is_async else 0.0
        soft = None if task.is_async else call.soft_time_limit  # an async body gets it on its own loop
        return await self._lanes.run(functools.partial(_call, task, call), call.time_limit, call.task, grace, soft)

    async def close(self) -> None:
        self._lanes.close()
