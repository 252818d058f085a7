"""``-P threads``: every body runs in one of ``concurrency`` threads.

A sync body is called in the thread; an ``async def`` body runs on that thread's own event loop (kept for the
thread's life), so a body that blocks cannot stall the worker's loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from celeriac.pools.base import Pool

if TYPE_CHECKING:
    from celeriac.app.registry import TaskRegistry
    from celeriac.app.task import Task


class ThreadPool(Pool):
    """Concurrency = threads."""

    implementation = "threads"

    def __init__(self, concurrency: int, tasks: TaskRegistry) -> None:
        super().__init__(concurrency, tasks)
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._loops: list[asyncio.AbstractEventLoop] = []

    def _call(self, task: Task[Any, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        if not task.is_async:
            return task(*args, **kwargs)
        loop: asyncio.AbstractEventLoop | None = getattr(self._local, "loop", None)
        if loop is None:
            loop = asyncio.new_event_loop()
            self._local.loop = loop
            self._loops.append(loop)
        return loop.run_until_complete(task(*args, **kwargs))

    def grow(self, n: int = 1) -> None:
        """Add runners; the thread executor was sized for the old concurrency, so later bodies get a new one."""
        super().grow(n)
        if self._executor is not None:
            self._executor.shutdown(wait=False)  # bodies running in it finish there
            self._executor = None

    async def run_body(self, task: Task[Any, Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="celeriac-thread")
        call = functools.partial(self._call, task, args, kwargs)
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._executor, context.run, call)

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        for loop in self._loops:
            loop.close()
        self._loops.clear()
