"""``-P asyncio``: ``async def`` bodies on the worker's loop; sync bodies in the pool's own threads."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from celeriac.pools.base import Pool

if TYPE_CHECKING:
    from celeriac.app.registry import TaskRegistry
    from celeriac.app.task import Task


class AsyncioPool(Pool):
    """Concurrency = tasks in flight on the loop; sync bodies use up to ``concurrency`` threads."""

    implementation = "asyncio"

    def __init__(self, concurrency: int, tasks: TaskRegistry) -> None:
        super().__init__(concurrency, tasks)
        self._executor: ThreadPoolExecutor | None = None

    def cancellable(self, task: Task[Any, Any]) -> bool:
        """Async bodies run on the worker's loop: cancelling their task stops them."""
        return task.is_async

    def grow(self, n: int = 1) -> None:
        """Add runners; the thread executor was sized for the old concurrency, so later bodies get a new one."""
        super().grow(n)
        if self._executor is not None:
            self._executor.shutdown(wait=False)  # bodies running in it finish there
            self._executor = None

    async def run_body(self, task: Task[Any, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        if task.is_async:
            return await task(*args, **kwargs)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="celeriac-sync")
        call = functools.partial(task.__call__, *args, **kwargs)
        context = contextvars.copy_context()  # the request and current app travel into the thread
        return await asyncio.get_running_loop().run_in_executor(self._executor, context.run, call)

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
