"""``make bench-quick``: the regression guard for the hot path, in about a minute. Not a test: it asserts nothing.

Prints, from one run on this machine: celeriac's rate against Celery's on Redis (the same 5,000 no-op tasks,
``-P asyncio`` beside Celery prefork, each counted from the worker's start of consumption), celeriac's cold
start (worker process start -> first task done, Redis and SQLite), and a plain ``def`` no-op's rate as a share of
the ``async def`` one. Run it before and after a change to the hot path and compare the ratios, not the rates:
the machine's speed drifts from hour to hour, the ratios much less.

    .venv/bin/python bench/quick.py                # needs Redis on 127.0.0.1:6379
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console
from rich.table import Table

import benchapp
import coldstart
from brokers import DEFAULT_REDIS
from throughput import Config, measure
from workers import WorkerSpec


def rate(worker: WorkerSpec, task: str, tasks: int) -> float:
    return asyncio.run(measure(Config(DEFAULT_REDIS, worker, task), tasks)).rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000, help="no-op tasks per throughput run (default 5000)")
    args = parser.parse_args()
    console = Console()
    async_rate = rate(WorkerSpec("celeriac", "asyncio", 8), benchapp.NOOP_ASYNC, args.tasks)
    sync_rate = rate(WorkerSpec("celeriac", "asyncio", 8), benchapp.NOOP_SYNC, args.tasks)
    celery_rate = rate(WorkerSpec("celery", "prefork", 2), benchapp.NOOP_SYNC, args.tasks)
    cold_redis = coldstart.one_run("celeriac", "redis")
    cold_sqlite = coldstart.one_run("celeriac", "sqlite")
    table = Table(title=f"bench-quick ({args.tasks} no-op tasks on Redis per rate; one run each)")
    for column in ("measure", "value", "target (issue 15)"):
        table.add_column(column)
    table.add_row("celeriac -P asyncio, async def", f"{async_rate:,.0f} tasks/s", "")
    table.add_row("Celery prefork -c 2, def", f"{celery_rate:,.0f} tasks/s", "")
    table.add_row("[b]ratio to Celery[/b]", f"[b]{async_rate / celery_rate:.1f}x[/b]", ">= 12x")
    table.add_row("def no-op / async def no-op (-P asyncio)", f"{sync_rate / async_rate:.0%}", ">= 80 %")
    table.add_row("cold start, Redis", f"{cold_redis:.3f} s", "<= 0.3 s")
    table.add_row("cold start, SQLite", f"{cold_sqlite:.3f} s", "<= 0.3 s")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
