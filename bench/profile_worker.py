"""cProfile of an in-process celeriac worker draining N no-op tasks: exact call counts per task.

Usage::

    python bench/profile_worker.py --broker redis --tasks 20000 [--pool asyncio] [-c 8] [--top 30]

The queue is filled first (untimed, not profiled); then a worker runs on this process's loop
(`celeriac.testing.start_worker`) under cProfile until it has processed every task. cProfile slows small
functions several times over, so use it for *what is called how often* (calls per task) and for relative
cost; take absolute speed from throughput.py, and the sampled view from ``throughput.py --profile``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time

import benchapp
from brokers import DEFAULT_REDIS, QUEUE, isolated
from celeriac.testing import start_worker, wait_for


async def drain(broker: str, tasks: int, pool: str, concurrency: int, top: int) -> None:
    with isolated(broker) as place:
        bench = benchapp.create_app(place.url, place.keyprefix, place.result_url)
        task = bench.noop_async if pool == "asyncio" else bench.noop_sync
        await task.adelay()  # declares the queue (see clients.CeleriacClient)

        async def sender(n: int) -> None:
            for _ in range(n):
                await task.adelay()

        await asyncio.gather(*(sender((tasks - 1) // 64 + (i < (tasks - 1) % 64)) for i in range(64)))
        probe = bench.app.make_transport()
        await probe.connect()
        try:
            print(f"{await probe.size(QUEUE)} tasks queued; profiling the worker", file=sys.stderr)
            profiler = cProfile.Profile()
            started = time.perf_counter()
            profiler.enable()
            async with start_worker(bench.app, pool=pool, concurrency=concurrency) as worker:
                await wait_for(lambda: worker.state.processed >= tasks, timeout=600, interval=0.05)
            profiler.disable()
            elapsed = time.perf_counter() - started
        finally:
            await probe.close()
            await bench.app.aclose()
    print(f"{tasks} tasks in {elapsed:.2f}s under cProfile ({tasks / elapsed:,.0f}/s); calls per task below")
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = filename.split("site-packages/")[-1].split("/src/")[-1]
        rows.append((tottime, cumtime, ncalls, f"{name} ({where}:{line})"))
    print(f"{'self ms':>9} {'cum ms':>9} {'calls/task':>10}  function   (top {top} by self time)")
    for tottime, cumtime, ncalls, label in sorted(rows, reverse=True)[:top]:
        print(f"{tottime * 1000:9.0f} {cumtime * 1000:9.0f} {ncalls / tasks:10.2f}  {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="sqlite", help=f"sqlite, redis ({DEFAULT_REDIS}) or a URL")
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--pool", default="asyncio", choices=("asyncio", "threads"))
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    broker = DEFAULT_REDIS if args.broker == "redis" else args.broker
    asyncio.run(drain(broker, args.tasks, args.pool, args.concurrency, args.top))


if __name__ == "__main__":
    main()
