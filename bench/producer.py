"""Producer rate: how fast one process enqueues no-op tasks, each call returning once the broker has the message.

Each mode runs in a fresh process of its own (celeriac from ``bench/.venv-user``, as a user installs it; Celery
from ``bench/.venv-celery``) on an isolated key prefix (``--broker sqlite``: a new database file), with no worker
running, and reports sends per second over ``--tasks`` sends after a 200-send warm-up:

* ``sync``: ``task.delay()`` in a plain loop on one thread (celeriac and Celery);
* ``async``: ``await task.adelay()`` in a loop in one asyncio task;
* ``gather``: ``asyncio.gather`` of ``task.adelay()`` in slices of 1,000;
* ``bulk``: ``await app.asend_tasks([task.s(), ...])`` (celeriac's bulk path; Celery has none), in slices of
  1,000.

    .venv/bin/python bench/producer.py --tasks 20000 --runs 3
    .venv/bin/python bench/producer.py --tasks 20000 --runs 3 --broker sqlite   # celeriac only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import celeryenv
import userenv
from brokers import DEFAULT_REDIS, isolated
from workers import clean_env

HERE = Path(__file__).resolve().parent
WARMUP = 200
SLICE = 1000
CELERIAC_MODES = ("sync", "async", "gather", "bulk")


def child(mode: str, tasks: int) -> None:
    """In the measuring process: send, time, print ``{"rate": sends/s}``."""
    import os

    import benchapp

    bench = benchapp.create_app(os.environ["BENCH_BROKER_URL"], os.environ.get("BENCH_KEYPREFIX", ""))
    task = bench.noop_async
    if mode == "sync":
        for _ in range(WARMUP):
            task.delay()
        started = time.perf_counter()
        for _ in range(tasks):
            task.delay()
        elapsed = time.perf_counter() - started
        bench.app.close()
    else:
        elapsed = _run(_async_child(bench, mode, tasks))
    print(json.dumps({"rate": tasks / elapsed}), flush=True)


def _run(main: Any) -> float:
    """Run on uvloop, the loop celeriac installs and a user's asyncio program may run (plain asyncio without)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    result: float = uvloop.run(main)
    return result


async def _async_child(bench: object, mode: str, tasks: int) -> float:
    from benchapp import BenchApp

    assert isinstance(bench, BenchApp)
    task = bench.noop_async
    for _ in range(WARMUP):
        await task.adelay()
    started = time.perf_counter()
    if mode == "async":
        for _ in range(tasks):
            await task.adelay()
    elif mode == "gather":
        for start in range(0, tasks, SLICE):
            await asyncio.gather(*(task.adelay() for _ in range(min(SLICE, tasks - start))))
    else:
        for start in range(0, tasks, SLICE):
            await bench.app.asend_tasks([task.s() for _ in range(min(SLICE, tasks - start))])
    elapsed = time.perf_counter() - started
    await bench.app.aclose()
    return elapsed


def measure(impl: str, mode: str, tasks: int, broker: str = DEFAULT_REDIS) -> float:
    """One run of ``impl``'s ``mode`` in a fresh process on a fresh key prefix (or database file)."""
    with isolated(broker) as place:
        env = clean_env(place)
        if impl == "celeriac":
            argv = [str(userenv.ensure()), str(HERE / "producer.py"), "--child", mode, "--tasks", str(tasks)]
        else:
            argv = [str(celeryenv.ensure()), str(HERE / "celery_client.py"), "enqueue", "--tasks", str(tasks)]
        done = subprocess.run(argv, env=env, cwd=HERE, capture_output=True, text=True, timeout=600, input="quit\n")
        if done.returncode != 0:
            raise RuntimeError(f"{impl} {mode} failed:\n{done.stderr[-2000:]}")
        reply = json.loads(done.stdout.splitlines()[0])
        return float(reply["rate"]) if "rate" in reply else tasks / float(reply["seconds"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--broker", choices=("redis", "sqlite"), default="redis")
    parser.add_argument("--child", choices=CELERIAC_MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.tasks)
        return 0
    broker = DEFAULT_REDIS if args.broker == "redis" else "sqlite"
    rows = [("celeriac", mode) for mode in CELERIAC_MODES] + ([("celery", "sync")] if args.broker == "redis" else [])
    rates: dict[tuple[str, str], list[float]] = {row: [] for row in rows}
    for _ in range(args.runs):  # round-robin: machine drift spreads over every row
        for row in rows:
            rates[row].append(measure(*row, args.tasks, broker))
    where = "Redis" if args.broker == "redis" else "SQLite"
    table = Table(title=f"producer: {args.tasks:,} no-op sends on {where}, one process (median of {args.runs})")
    for column in ("implementation", "mode", "sends/s", "runs"):
        table.add_column(column, justify="right" if column != "implementation" else "left")
    for (impl, mode), values in rates.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        table.add_row(impl, mode, f"{statistics.median(values):,.0f}", runs)
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
