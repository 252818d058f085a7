"""The celeriac app the benchmarks drive: two no-op tasks (results ignored) and a ``sentinel`` with a result.

The worker loads it with ``-A benchapp``; its broker comes from the environment:

* ``BENCH_BROKER_URL``: the broker (and result store) URL, default the SQLite file ``./bench.db``;
* ``BENCH_KEYPREFIX``: a Redis ``global_keyprefix`` for broker and results, so a run touches only keys under
  its own prefix (empty: no prefix);
* ``BENCH_RESULT_URL``: the result backend (default: the broker's store; ``rpc://`` on RabbitMQ).

The benchmark scripts build their own client apps with `create_app` (one per broker they measure); the task
names match `celeryapp`, so either client can drive either worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from celeriac import App, Task

NOOP_ASYNC = "bench.noop_async"
NOOP_SYNC = "bench.noop_sync"
SENTINEL = "bench.sentinel"
CPU = "bench.cpu"


@dataclass(frozen=True)
class BenchApp:
    """A celeriac app with the benchmark tasks registered on it."""

    app: App
    noop_async: Task[[], None]
    noop_sync: Task[[], None]
    sentinel: Task[[int], int]
    cpu: Task[[], None]


def create_app(broker_url: str, keyprefix: str = "", result_url: str | None = None) -> BenchApp:
    """A new app on ``broker_url`` (results in the same store unless ``result_url``), every Redis key under
    ``keyprefix``."""
    app = App("benchapp", broker=broker_url, backend=result_url or None)
    if keyprefix:
        app.conf.broker_transport_options = {"global_keyprefix": keyprefix}
        app.conf.result_backend_transport_options = {"global_keyprefix": keyprefix}

    @app.task(name=NOOP_ASYNC, ignore_result=True)
    async def noop_async() -> None:
        """Nothing, on the worker's event loop (-P asyncio)."""

    @app.task(name=NOOP_SYNC, ignore_result=True)
    def noop_sync() -> None:
        """Nothing, in a pool thread."""

    @app.task(name=SENTINEL)
    async def sentinel(value: int = 0) -> int:
        """Return ``value``: a task whose result a client can wait for."""
        return value

    @app.task(name=CPU, ignore_result=True)
    def cpu() -> None:
        """CPU-bound, ~4 ms: ``sum(range(200000))`` (bench/cpu.py)."""
        sum(range(200_000))

    return BenchApp(app, noop_async, noop_sync, sentinel, cpu)


bench = create_app(
    os.environ.get("BENCH_BROKER_URL", "sqlite:///bench.db"),
    os.environ.get("BENCH_KEYPREFIX", ""),
    os.environ.get("BENCH_RESULT_URL"),
)
app = bench.app
