"""``-P prefork``: task bodies run in child processes, one body per idle child at a time.

The pool's runners (one per child, `Pool`) take jobs; a runner's body goes to an idle child only, so no task
waits behind a long one while another child is free (Celery's ``-O fair``). Children are replaced whenever
they exit: after ``worker_max_tasks_per_child`` tasks, above ``worker_max_memory_per_child`` KiB, killed at
a hard time limit, or dead mid-body (the task fails with `WorkerLostError`, or is requeued by the tracer with
``acks_late`` + ``reject_on_worker_lost``). ``revoke --terminate`` sends its signal to the child running the
body. ``grow``/``shrink`` start or retire children with the runners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from celeriac.errors import ConfigurationError
from celeriac.pools.base import Pool, PoolStatistics
from celeriac.pools.call import Call
from celeriac.pools.prefork.child import ChildConfig
from celeriac.pools.prefork.handle import ChildHandle, context
from celeriac.pools.prefork.source import RegistryRef
from celeriac.protocol.failures import exception_from_dict

if TYPE_CHECKING:
    from celeriac.app.registry import TaskRegistry
    from celeriac.app.task import Task
    from celeriac.settings import Settings

log = logging.getLogger("celeriac.pools")

#: Seconds a child signalled by ``revoke --terminate`` (or left by a cold shutdown) gets before SIGKILL.
KILL_GRACE = 5.0


class _RemoteTraceback(Exception):
    """The child's traceback, chained under the exception it raised (as concurrent.futures does)."""

    def __str__(self) -> str:
        return str(self.args[0])


class PreforkPool(Pool):
    """Child processes started by the worker (fork by default, spawn selectable) running task bodies."""

    implementation = "prefork"

    def __init__(self, concurrency: int, tasks: TaskRegistry, conf: Settings | None = None) -> None:
        super().__init__(concurrency, tasks, conf)
        method = conf.worker_pool_start_method if conf is not None else "fork"
        try:
            self._context = context(method)
        except ValueError:
            raise ConfigurationError(f"worker_pool_start_method {method!r}: choose fork or spawn") from None
        self.max_tasks = conf.worker_max_tasks_per_child if conf is not None else None
        self.max_memory = conf.worker_max_memory_per_child if conf is not None else None
        for name, value in (("max_tasks_per_child", self.max_tasks), ("max_memory_per_child", self.max_memory)):
            if value is not None and value < 1:
                raise ConfigurationError(f"worker_{name} must be at least 1, not {value}")
        self._forks = method == "fork"
        self._source: Any = tasks if self._forks else RegistryRef.of(tasks)
        self._children: dict[int, ChildHandle] = {}
        self._free: asyncio.Queue[ChildHandle] = asyncio.Queue()
        self._starting: set[asyncio.Task[None]] = set()
        self._closing = False
        self._warned_memory = False
        self.writes: dict[int, int] = {}  # pid -> bodies sent (`writes` in inspect stats)

    async def start(self) -> None:
        await super().start()
        await asyncio.gather(*(self._start_child() for _ in range(self.concurrency)))

    # -- children --------------------------------------------------------------------------------
    async def _start_child(self) -> None:
        # Only a forked child holds copies of the parent's fds (a spawned one has numbers of its own).
        inherited = tuple(c.fileno() for c in self._children.values()) if self._forks else ()
        config = ChildConfig(self.max_tasks, self.max_memory, inherited)
        handle, ready = await ChildHandle.start(self._context, self._source, config)
        if self.max_memory is not None and ready.rss_kib > self.max_memory and not self._warned_memory:
            self._warned_memory = True
            log.warning(
                "Pool children start at %d KiB, above max-memory-per-child (%d KiB): they are not recycled for "
                "memory (said once)",
                ready.rss_kib,
                self.max_memory,
            )
        self._children[handle.pid] = handle
        handle.exited.add_done_callback(lambda _: self._gone(handle))
        if self._closing:
            handle.stop()
        else:
            self._free.put_nowait(handle)

    def _gone(self, handle: ChildHandle) -> None:
        """A child exited (any reason): forget it and start a replacement if the pool is short of one."""
        handle.retired = True
        self._children.pop(handle.pid, None)
        self.writes.pop(handle.pid, None)
        self._refill()

    def _refill(self) -> None:
        if self._closing:
            return
        live = sum(1 for c in self._children.values() if not c.retired) + len(self._starting)
        for _ in range(self.concurrency - live):
            task = asyncio.get_running_loop().create_task(self._start_logged(), name="prefork-start-child")
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start_logged(self) -> None:
        try:
            await self._start_child()
        except Exception as exc:
            log.error("Could not start a pool child: %s", exc)
            await asyncio.sleep(1.0)  # do not spin on a child that cannot start
            current = asyncio.current_task()
            if current is not None:
                self._starting.discard(current)  # not counted as starting any more: the refill may retry
            self._refill()

    def _retire(self, handle: ChildHandle, signum: int) -> None:
        """Signal ``handle`` and make sure it is gone within `KILL_GRACE` (its stream is no longer trusted)."""
        handle.kill(signum)
        if signum != signal.SIGKILL:
            loop = asyncio.get_running_loop()
            loop.call_later(KILL_GRACE, handle.kill, signal.SIGKILL)
        self._refill()

    # -- bodies ----------------------------------------------------------------------------------
    def cancellable(self, task: Task[Any, Any]) -> bool:
        """Every body: ``revoke --terminate`` sends its signal to the child (then SIGKILL after a grace)."""
        return True

    async def run_body(self, task: Task[Any, Any], call: Call) -> Any:
        while (handle := await self._free.get()).retired:
            pass  # exited or retired while idle
        self.writes[handle.pid] = self.writes.get(handle.pid, 0) + 1
        try:
            done = await handle.run(call, call.time_limit)
        except asyncio.CancelledError:
            self._retire(handle, self.cancel_signal() or signal.SIGTERM)
            raise
        except BaseException:  # lost or past the hard limit: it is gone or must go
            self._retire(handle, signal.SIGKILL)
            raise
        self._after(handle, done.exiting)
        if done.ok:
            return done.value
        exc: BaseException = exception_from_dict(done.value) if isinstance(done.value, dict) else done.value
        if done.traceback:
            exc.__cause__ = _RemoteTraceback(f'\n"""\n{done.traceback}"""')
        raise exc

    def _after(self, handle: ChildHandle, exiting: str | None) -> None:
        if exiting is not None:
            log.info("Pool child %d exits (%s) and is replaced", handle.pid, exiting)
            handle.retired = True
            self._refill()
        elif self._closing or sum(1 for c in self._children.values() if not c.retired) > self.concurrency:
            handle.stop()  # surplus after a shrink
        else:
            self._free.put_nowait(handle)

    # -- size and life ---------------------------------------------------------------------------
    def grow(self, n: int = 1) -> None:
        super().grow(n)
        self._refill()

    def shrink(self, n: int = 1) -> None:
        super().shrink(n)
        surplus = sum(1 for c in self._children.values() if not c.retired) - self.concurrency
        while surplus > 0 and not self._free.empty():
            handle = self._free.get_nowait()
            if not handle.retired:
                handle.stop()
                surplus -= 1

    async def close(self) -> None:
        """Stop every child: idle ones are asked to exit, the rest are killed after `KILL_GRACE`."""
        self._closing = True
        for task in list(self._starting):
            task.cancel()
        children = list(self._children.values())
        for handle in children:
            handle.stop()
        if children:
            waits = [asyncio.shield(handle.exited) for handle in children]
            _, late = await asyncio.wait(waits, timeout=KILL_GRACE)
            for handle in children:
                handle.kill(signal.SIGKILL)
            if late:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*late), KILL_GRACE)

    def statistics(self) -> PoolStatistics:
        stats = super().statistics()
        return replace(
            stats,
            processes=tuple(sorted(self._children)),
            max_tasks_per_child=self.max_tasks,
            writes=dict(self.writes),
        )
