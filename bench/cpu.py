"""CPU-bound tasks through process pools: celeriac ``-P prefork`` against Celery 5.7 prefork, same ``-c``.

Usage (from the repository root, with .venv's python; Redis on 127.0.0.1:6379)::

    python bench/cpu.py                          # 2,000 CPU tasks and 20,000 no-ops, -c 2, 3 runs each
    python bench/cpu.py --cpu-tasks 4000 --noop-tasks 20000 --runs 1 -c 2

Each run is one `throughput.measure` (a fresh Redis key prefix, the queue filled first, one worker process
started with its documented command line, the clock from the first fetch to the sentinel's result): the CPU
task is ``bench.cpu`` (``sum(range(200000))``, results ignored), the no-op is ``bench.noop_sync``.

The physical limit of the CPU rows is ``cores / task CPU time``: the task's CPU time is measured here, in this
process, as the best of 5 rounds of 200 calls (``time.process_time``), so it is the body alone, with nothing
of any queue. "% of limit" = tasks/s over that limit. "% of bare" = tasks/s over what ``-c`` bare processes
calling the body in a loop reach together (the machine's real ceiling: two vCPUs that are hyperthreads of one
core do not run two bodies at twice the rate of one). The worker CPU per task and peak RSS come from the
worker's whole process tree (children included), as in throughput.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

import benchapp
from brokers import DEFAULT_REDIS
from throughput import Config, Run, summarize
from throughput import measure as measure_run
from workers import WorkerSpec

console = Console(width=None if sys.stdout.isatty() else 150)


def task_cpu_seconds(rounds: int = 5, calls: int = 200) -> float:
    """CPU seconds of one ``sum(range(200000))`` here: the best round's mean."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            sum(range(200_000))
        best = min(best, (time.process_time() - started) / calls)
    return best


def _burn(calls: int) -> None:
    for _ in range(calls):
        sum(range(200_000))


def bare_rate(processes: int, calls: int = 300) -> float:
    """Tasks/s of ``processes`` bare processes each calling the body ``calls`` times at once (no queue at all):
    the machine's real ceiling when its cores are hyperthreads of one another or otherwise share work."""
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(processes) as pool:
        pool.map(_burn, [1] * processes)  # started and warm
        started = time.perf_counter()
        pool.map(_burn, [calls] * processes)
        return processes * calls / (time.perf_counter() - started)


def configs(redis: str, concurrency: int) -> list[Config]:
    """CPU then no-op, each with celeriac prefork then Celery prefork."""
    tasks = (benchapp.CPU, benchapp.NOOP_SYNC)
    return [
        Config(redis, WorkerSpec(impl, "prefork", concurrency), t) for t in tasks for impl in ("celeriac", "celery")
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-tasks", type=int, default=2000)
    parser.add_argument("--noop-tasks", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("-c", "--concurrency", type=int, default=2)
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    per_task = task_cpu_seconds()
    cores = os.cpu_count() or 1
    limit = min(cores, args.concurrency) / per_task
    bare = bare_rate(args.concurrency)
    runs: dict[Config, list[Run]] = {config: [] for config in configs(args.redis, args.concurrency)}
    for _ in range(args.runs):  # round-robin, so drifts in machine load spread over all rows
        for config in runs:
            count = args.cpu_tasks if config.task == benchapp.CPU else args.noop_tasks
            runs[config].append(asyncio.run(measure_run(config, count)))
    out = Table(title=f"CPU-bound and no-op tasks through prefork -c {args.concurrency} (median of {args.runs})")
    names = (
        "worker",
        "task",
        "tasks/s",
        "% of limit",
        "% of bare",
        "worker CPU/task",
        "peak RSS (tree)",
        "others' load",
    )
    for name in names:
        out.add_column(name, justify="left" if name in {"worker", "task"} else "right")
    for config, measured in runs.items():
        row = summarize(config, measured)
        cpu = config.task == benchapp.CPU
        share = f"{row['tasks_per_s'] / limit:.0%}" if cpu else "-"
        share_bare = f"{row['tasks_per_s'] / bare:.0%}" if cpu else "-"
        out.add_row(
            f"{row['impl']} -P prefork -c {row['concurrency']}",
            config.task.removeprefix("bench."),
            f"{row['tasks_per_s']:,.0f}",
            share,
            share_bare,
            f"{row['worker_cpu_ms_per_task']:.3f} ms",
            f"{row['worker_peak_rss_mib']:.1f} MiB",
            f"{row['others_cores']:.2f} cores",
        )
    console.print(out)
    console.print(
        f"task CPU time {per_task * 1000:.2f} ms; physical limit {min(cores, args.concurrency)} cores / task = "
        f"{limit:,.0f} tasks/s; {args.concurrency} bare processes calling it in a loop: {bare:,.0f} tasks/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
