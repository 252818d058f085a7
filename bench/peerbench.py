"""celeriac beside its peers on Redis, one method for all, in one run: Celery, Dramatiq, Huey, taskiq, SAQ, streaQ.

Each implementation runs from its own virtualenv (celeriac from ``bench/.venv-user`` as a user installs it,
Celery from ``bench/.venv-celery``, the others from ``bench/.venv-peer-<name>``, pinned below, made on first
use) with its app in ``bench/peers/``: a no-op task and a *sentinel* task that sets a Redis key when it runs.

Per run, on a Redis database of its own (``--redis-db``, which must be empty when the script starts; it is
flushed between runs):

1. the implementation's own client enqueues ``--tasks`` no-ops and then the sentinel (its normal per-call API in
   a loop: ``delay()``, ``send()``, a call, ``await kiq()``, ``await enqueue()``): the *enqueue/s* column;
2. the worker process starts with its documented command and defaults (celeriac ``-P asyncio``, Celery prefork
   with one process per core, Dramatiq one process per core with 8 threads, Huey 8 threads, taskiq's two
   processes, SAQ concurrency 8, streaQ one worker); the clock starts just before it is spawned and stops when the
   sentinel's key appears (polled every 2 ms). The queues are FIFO, so every no-op was taken before the sentinel:
   *tasks/s* is (no-ops + 1) / that time, start-up included, as a user sees it;
3. worker CPU per task and peak RSS come from the worker's whole process tree (``/proc``), as in throughput.py.

A second measurement per implementation, *start -> first task*, enqueues only the sentinel and times the same
span (cold start). Medians of ``--runs``; the runs are round-robin so drifts of the machine spread over all rows.

    .venv/bin/python bench/peerbench.py --tasks 20000 --runs 3
    .venv/bin/python bench/peerbench.py --only celeriac,huey --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

import celeryenv
import userenv
from procs import Managed, tree_cpu, tree_peak_rss

HERE = Path(__file__).resolve().parent
APPS = HERE / "peers"
PINNED = {
    "dramatiq": "dramatiq[redis]==2.2.1",
    "huey": "huey==3.5.4 redis",
    "taskiq": "taskiq==0.13.0 taskiq-redis==1.2.4",
    "saq": "saq[redis]==0.26.4 typing_extensions",  # saq 0.26.4 imports typing_extensions without requiring it
    "streaq": "streaq==7.2.0 redis",  # redis-py only for the sentinel's key (streaQ itself talks coredis)
}
WORKERS = {
    "celeriac": ["-m", "celeriac", "-A", "peer_celeriac", "worker", "-l", "warning"],
    "celery": ["-m", "celery", "-A", "peer_celery", "worker", "-l", "warning"],
    "dramatiq": ["-m", "dramatiq", "peer_dramatiq", "--processes", str(os.cpu_count() or 2), "--threads", "8"],
    "huey": ["-m", "huey.bin.huey_consumer", "peer_huey.huey", "-w", "8", "-k", "thread", "-q"],
    "taskiq": ["-m", "taskiq", "worker", "peer_taskiq:broker", "--log-level", "WARNING"],
    "saq": ["-m", "saq", "peer_saq.settings", "--quiet"],
    "streaq": ["-m", "streaq", "run", "peer_streaq:worker"],
}
DONE_KEY = "bench-peers:done"


def python_of(name: str) -> Path:
    """The interpreter of ``name``'s virtualenv, made (or refreshed after a pin change) first."""
    if name == "celeriac":
        return userenv.ensure()
    if name == "celery":
        return celeryenv.ensure()
    venv = HERE / f".venv-peer-{name}"
    marker = venv / ".installed"
    python = venv / "bin" / "python"
    if not (marker.exists() and marker.read_text().strip() == PINNED[name] and python.exists()):
        print(f"creating {venv} with {PINNED[name]} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q", "install", *PINNED[name].split()]
        subprocess.run(pip, check=True)
        marker.write_text(PINNED[name] + "\n")
    return python


@dataclass(frozen=True)
class Run:
    """One run of one implementation."""

    enqueue_rate: float
    seconds: float  # worker spawn -> sentinel done
    tasks: int
    cpu_seconds: float
    peak_rss: int

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds


class Bench:
    """The runs on one empty Redis database."""

    def __init__(self, redis_url: str, workdir: Path) -> None:
        self.url = redis_url
        self.redis = redis.Redis.from_url(redis_url)
        self.workdir = workdir
        if self.redis.dbsize():
            raise SystemExit(f"peerbench.py: error: {redis_url} is not empty; choose an empty one with --redis-db")

    def env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERIAC_", "CELERY_", "DRAMATIQ_"))}
        for key in ("VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE"):
            env.pop(key, None)
        paths = [str(APPS)] + ([str(HERE.parent / "src")] if name == "celeriac" else [])
        env.update(PYTHONPATH=os.pathsep.join(paths), BENCH_REDIS_URL=self.url, BENCH_DONE_KEY=DONE_KEY)
        return env

    def run(self, name: str, tasks: int) -> Run:
        self.redis.flushdb()  # this database was empty when we started: only our own keys are in it
        python, env = python_of(name), self.env(name)
        client = [str(python), str(APPS / "client.py"), f"peer_{name}", str(tasks)]
        done = subprocess.run(client, env=env, cwd=APPS, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{name} client failed:\n{done.stderr[-3000:]}")
        enqueue_rate = (tasks + 1) / float(json.loads(done.stdout.splitlines()[-1])["seconds"])
        log = self.workdir / f"{name}-worker.log"
        started = time.perf_counter()
        with Managed([str(python), *WORKERS[name]], env=env, cwd=APPS, log_path=log) as worker:
            deadline = started + 60 + tasks / 200  # 200 tasks/s at the very least, or something is wrong
            while self.redis.get(DONE_KEY) is None:
                if not worker.alive():
                    raise RuntimeError(f"the {name} worker exited:\n{worker.log_tail()}")
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"the {name} sentinel did not run in time:\n{worker.log_tail()}")
                time.sleep(0.002)
            seconds = time.perf_counter() - started
            cpu, rss = tree_cpu(worker.pid), tree_peak_rss(worker.pid)
        self.redis.flushdb()
        return Run(enqueue_rate, seconds, tasks + 1, cpu, rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(WORKERS)}")
    parser.add_argument("--redis-db", type=int, default=10, help="an empty Redis database to use (default 10)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill`/`timeout` stop the workers, as Ctrl-C does
    names = args.only.split(",") if args.only else list(WORKERS)
    unknown = [n for n in names if n not in WORKERS]
    if unknown:
        parser.error(f"--only: unknown {unknown[0]!r} (known: {', '.join(WORKERS)})")
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / f"celeriac-peerbench-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    bench = Bench(f"redis://127.0.0.1:6379/{args.redis_db}", workdir)
    for name in names:
        python_of(name)  # all environments exist before the first clock starts
    loads: dict[str, list[Run]] = {n: [] for n in names}
    colds: dict[str, list[float]] = {n: [] for n in names}
    failed: dict[str, str] = {}
    for _ in range(args.runs):
        for name in names:
            if name in failed:
                continue
            try:
                loads[name].append(bench.run(name, args.tasks))
                colds[name].append(bench.run(name, 0).seconds)
            except RuntimeError as exc:  # the other rows still run; the table says which one failed and why
                failed[name] = str(exc).splitlines()[0]
                bench.redis.flushdb()
                print(f"peerbench.py: {exc}", file=sys.stderr)
    table = Table(title=f"{args.tasks:,} no-op tasks on Redis, from worker start (median of {args.runs})")
    for column in ("system", "tasks/s", "runs", "start -> first task", "enqueue/s", "CPU ms/task", "peak RSS"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for name in names:
        runs = loads[name]
        if name in failed or not runs:
            table.add_row(name, f"failed: {failed.get(name, '?')}", "", "", "", "", "")
            continue
        table.add_row(
            name,
            f"{statistics.median(r.rate for r in runs):,.0f}",
            ", ".join(f"{r.rate:,.0f}" for r in runs),
            f"{statistics.median(colds[name]):.2f} s",
            f"{statistics.median(r.enqueue_rate for r in runs):,.0f}",
            f"{statistics.median(r.cpu_seconds / r.tasks for r in runs) * 1000:.3f}",
            f"{statistics.median(r.peak_rss for r in runs) / 2**20:.1f} MiB",
        )
    Console(width=None if sys.stdout.isatty() else 150).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
