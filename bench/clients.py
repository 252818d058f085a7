"""The clients of a throughput run: enqueue N no-ops, then send the sentinel and wait for its result.

`CeleriacClient` uses celeriac's async API on the caller's event loop; `CeleryClient` drives Celery's own client
(`celery_client`, in ``bench/.venv-celery``) over stdin/stdout, and `DramatiqClient` Dramatiq's
(`dramatiq_client`, in ``bench/.venv-dramatiq``) the same way, so each implementation is measured with its own
client.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from typing import Any, Protocol

import benchapp
import celeryenv
import dramatiqenv
from brokers import Place
from procs import Managed
from workers import HERE, clean_env

PRODUCER_CONCURRENCY = 64


def check_cancelled() -> None:
    """Raise CancelledError if this task was cancelled (Ctrl-C) but the cancellation got lost.

    redis-py 8.1's asyncio client can swallow a ``cancel()`` that arrives while it sets up a connection (see
    ``celeriac._redis.compat.raise_if_cancelled``); loops that poll Redis check at their head.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Client(Protocol):
    """Enqueues the no-ops, then sends the sentinel and waits for its result."""

    async def enqueue(self, count: int) -> float: ...
    async def sentinel(self) -> None: ...
    async def close(self) -> None: ...


class CeleriacClient:
    """celeriac's async API on this process's event loop."""

    def __init__(self, place: Place, task: str) -> None:
        self.bench = benchapp.create_app(place.url, place.keyprefix, place.result_url)
        self.task = self.bench.app.tasks.get(task)
        if self.task is None:
            raise ValueError(f"benchapp has no task {task!r}")

    async def enqueue(self, count: int) -> float:
        task = self.task
        assert task is not None
        await self.bench.app.atransport()  # connect before the clock starts
        started = time.perf_counter()
        # One send first: it declares the queue. Concurrent first sends would each declare it (the producer's
        # declared-set is checked before the await), using one pooled connection apiece.
        await task.adelay()

        async def sender(n: int) -> None:
            for _ in range(n):
                check_cancelled()
                await task.adelay()

        share, extra = divmod(count - 1, PRODUCER_CONCURRENCY)
        await asyncio.gather(*(sender(share + (i < extra)) for i in range(PRODUCER_CONCURRENCY)))
        elapsed = time.perf_counter() - started
        await self.bench.app.abackend()  # connect the result store now, not during the timed sentinel
        return elapsed

    async def sentinel(self) -> None:
        result = await self.bench.sentinel.adelay(1)
        await result.aget(timeout=120)

    async def close(self) -> None:
        await self.bench.app.aclose()


class CeleryClient:
    """Celery's client, in its own virtualenv: `celery_client` ``enqueue``, driven over stdin/stdout."""

    env = celeryenv
    script = "celery_client.py"

    def __init__(self, place: Place, task: str) -> None:
        self.place = place
        self.task = task
        self.proc: Managed | None = None

    async def _reply(self) -> dict[str, Any]:
        assert self.proc is not None
        line = await asyncio.to_thread(self.proc.stdout.readline)
        if not line:
            raise RuntimeError(f"the {self.script} client exited:\n{self.proc.log_tail()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def enqueue(self, count: int) -> float:
        python = self.env.ensure()
        argv = [str(python), str(HERE / self.script), "enqueue", "--tasks", str(count), "--task", self.task]
        log = self.place.workdir / self.script.replace(".py", ".log")
        self.proc = Managed(
            argv, env=clean_env(self.place), cwd=HERE, log_path=log, stdin=subprocess.PIPE, stdout_pipe=True
        )
        return float((await self._reply())["seconds"])

    async def sentinel(self) -> None:
        assert self.proc is not None
        self.proc.stdin.write("sentinel\n")
        self.proc.stdin.flush()
        await self._reply()

    async def close(self) -> None:
        if self.proc is not None:
            if self.proc.alive():
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            await asyncio.to_thread(self.proc.stop)


class DramatiqClient(CeleryClient):
    """Dramatiq's client, in its own virtualenv: `dramatiq_client` ``enqueue``, driven the same way."""

    env = dramatiqenv
    script = "dramatiq_client.py"
