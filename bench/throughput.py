"""Throughput of ONE worker process draining a full queue of no-op tasks: celeriac and Celery side by side.

Usage (from the repository root, with .venv's python)::

    python bench/throughput.py --broker redis --impl celeriac --pool asyncio -c 8 --tasks 20000
    python bench/throughput.py --broker redis --impl celery --pool prefork -c 2
    python bench/throughput.py --compare --tasks 20000      # the standard matrix; writes bench/results/<date>.json
    python bench/throughput.py --compare --broker amqp      # RabbitMQ: celeriac vs Celery prefork c2 vs Dramatiq

One run:

1. A fresh place on the broker (its own Redis key prefix, or its own SQLite file; see `brokers`).
2. The client enqueues N no-op tasks (results ignored) and the producer rate is reported: celeriac with its
   async API (``await task.adelay()`` from 64 concurrent senders); Celery with plain ``task.delay()`` in a loop
   (`celery_client`, in Celery's own virtualenv).
3. One worker process starts (`workers`). The clock starts when the queue length first drops below N (polled
   every millisecond), so interpreter start-up and connecting are not counted.
4. When the queue is empty (polled every 10 ms) the client sends ``bench.sentinel``, a task *with* a result, and
   waits for it; the clock stops when the result is back. The queue is FIFO, so every no-op was delivered
   before the sentinel.
5. tasks/s = N / elapsed. Worker CPU per task = the worker's utime + stime (its whole process tree, so a
   prefork pool's children count) over the timed span / N. Peak RSS = VmHWM summed over that tree. For Redis,
   the server's own CPU over the span is reported too (it is shared with anything else using that server).

Error bound of the elapsed time: the start is late by at most one poll (1 ms, plus the client's own LLEN round
trip); the end is late by at most one empty-queue poll (10 ms) plus one sentinel round trip (about a
millisecond, see latency.py); and up to ``prefetch`` no-ops fetched just before the sentinel may still be
finishing when it returns (for a no-op, well under a millisecond). So the measured time is long by at most
~12 ms: under 1% for any run longer than 1.2 s (20,000 tasks at under 16,000/s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import benchapp
import results
from brokers import DEFAULT_AMQP, DEFAULT_REDIS, QUEUE, broker_pid, isolated, kind_of
from celeriac.transports.base import Transport
from clients import CeleriacClient, CeleryClient, Client, DramatiqClient, check_cancelled
from procs import Managed, Usage, tree_peak_rss, wait_for_quiet
from workers import HERE, WorkerSpec, start_worker

START_POLL = 0.001
EMPTY_POLL = 0.010
STALL_TIMEOUT = 60.0  # no progress for this long: the run failed

console = Console(width=None if sys.stdout.isatty() else 150)


@dataclass(frozen=True)
class Config:
    """One line of the results table: a broker, a worker, and which no-op it runs."""

    broker: str
    worker: WorkerSpec
    task: str

    @property
    def label(self) -> str:
        return f"{kind_of(self.broker)} / {self.worker.label} / {self.task}"


@dataclass(frozen=True)
class Run:
    """The measurements of one run."""

    tasks: int
    enqueue_seconds: float
    drain_seconds: float
    worker_cpu_seconds: float
    worker_peak_rss: int
    broker_cpu_seconds: float | None
    others_cores: float

    @property
    def rate(self) -> float:
        return self.tasks / self.drain_seconds

    @property
    def enqueue_rate(self) -> float:
        return self.tasks / self.enqueue_seconds

    @property
    def cpu_per_task(self) -> float:
        return self.worker_cpu_seconds / self.tasks


# -- one run ------------------------------------------------------------------------------------------------


async def _poll_until(
    probe: Transport, worker: Managed, done: Callable[[int], bool], interval: float, what: str, queue: str = QUEUE
) -> None:
    """Poll the queue length until ``done(size)``; raise when the worker exits or nothing moves for a minute."""
    last, last_change = -1, time.monotonic()
    while True:
        check_cancelled()
        size = await probe.size(queue)
        if done(size):
            return
        now = time.monotonic()
        if size != last:
            last, last_change = size, now
        if not worker.alive():
            raise RuntimeError(f"the worker exited ({worker.proc.returncode}) {what}:\n{worker.log_tail()}")
        if now - last_change > STALL_TIMEOUT:
            raise RuntimeError(f"no progress for {STALL_TIMEOUT:.0f}s {what}:\n{worker.log_tail()}")
        await asyncio.sleep(interval)


def start_profiler(pid: int, out: Path, workdir: Path) -> Managed:
    """py-spy sampling ``pid`` (and its children) until stopped; collapsed stacks go to ``out``."""
    argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid), "--subprocesses"]
    argv += ["--nonblocking", "--rate", "250", "--format", "raw", "--output", str(out)]
    log = workdir / "py-spy.log"
    return Managed(argv, env=dict(os.environ), cwd=workdir, log_path=log, stop_signal=signal.SIGINT)


async def measure(config: Config, tasks: int, profile: Path | None = None) -> Run:
    """Enqueue, start the worker, time the drain; everything started is stopped and cleaned up."""
    with isolated(config.broker) as place:
        impl = config.worker.impl
        makers = {"celeriac": CeleriacClient, "celery": CeleryClient, "dramatiq": DramatiqClient}
        client: Client = makers[impl](place, config.task)
        queue = "default" if impl == "dramatiq" else QUEUE
        probe = benchapp.create_app(place.url, place.keyprefix, place.result_url).app.make_transport()
        server_pid = broker_pid(place)
        try:
            await probe.connect()
            enqueue_seconds = await client.enqueue(tasks)
            queued = await probe.size(queue)
            settle = time.monotonic() + 10  # a client without confirms (Celery, Dramatiq on RabbitMQ) returns
            while queued < tasks and time.monotonic() < settle:  # before RabbitMQ has routed its last messages
                await asyncio.sleep(0.01)
                queued = await probe.size(queue)
            if queued != tasks:
                raise RuntimeError(f"{queued} messages in the queue after enqueueing {tasks}")
            with start_worker(config.worker, place) as worker, contextlib.ExitStack() as profiling:
                await _poll_until(probe, worker, lambda size: size < tasks, START_POLL, "before consuming", queue)
                before = Usage.now(worker.pid, server_pid)
                if profile is not None:
                    profiling.enter_context(start_profiler(worker.pid, profile, place.workdir))
                await _poll_until(probe, worker, lambda size: size == 0, EMPTY_POLL, "while draining", queue)
                await client.sentinel()
                used = Usage.now(worker.pid, server_pid) - before
                rss = tree_peak_rss(worker.pid)
                await asyncio.to_thread(profiling.close)
                await asyncio.to_thread(worker.stop)
        finally:
            await client.close()
            await probe.close()
    broker_cpu = used.broker if server_pid else None
    return Run(tasks, enqueue_seconds, used.wall, used.worker, rss, broker_cpu, used.others_cores)


# -- the matrix and the table -------------------------------------------------------------------------------


def default_task(worker: WorkerSpec) -> str:
    """The natural no-op for a pool: the ``async def`` one on celeriac's asyncio pool, else the ``def`` one."""
    if worker.impl == "dramatiq":
        return "noop_sync"
    return benchapp.NOOP_ASYNC if (worker.impl, worker.pool) == ("celeriac", "asyncio") else benchapp.NOOP_SYNC


def default_concurrency(impl: str, pool: str) -> int:
    """8 (celeriac's default) for asyncio and threads pools; one process per core for prefork (Celery's)."""
    if pool == "solo":
        return 1
    if pool == "prefork":
        return os.cpu_count() or 2
    return 8


def compare_matrix(redis_url: str) -> list[Config]:
    """celeriac asyncio and threads vs Celery prefork c=2 and threads on Redis; celeriac alone on SQLite."""
    workers = [
        WorkerSpec("celeriac", "asyncio", 8),
        WorkerSpec("celeriac", "threads", 8),
        WorkerSpec("celery", "prefork", 2),
        WorkerSpec("celery", "threads", 8),
    ]
    on_redis = [Config(redis_url, w, default_task(w)) for w in workers]
    on_sqlite = [Config("sqlite", w, default_task(w)) for w in workers if w.impl == "celeriac"]
    return on_redis + on_sqlite


def compare_amqp_matrix(amqp_url: str) -> list[Config]:
    """RabbitMQ: celeriac asyncio c=8 vs Celery prefork c=2 vs Dramatiq (its defaults: a process per core, 8
    threads each)."""
    workers = [
        WorkerSpec("celeriac", "asyncio", 8),
        WorkerSpec("celery", "prefork", 2),
        WorkerSpec("dramatiq", "threads", 8),
    ]
    return [Config(amqp_url, w, default_task(w)) for w in workers]


def summarize(config: Config, runs: Sequence[Run]) -> dict[str, Any]:
    """Medians over the runs (peak RSS: the largest), plus every run."""
    rates = [r.rate for r in runs]
    broker = [r.broker_cpu_seconds / r.tasks for r in runs if r.broker_cpu_seconds is not None]
    return {
        "broker": kind_of(config.broker),
        "impl": config.worker.impl,
        "pool": config.worker.pool,
        "concurrency": config.worker.concurrency,
        "task": config.task,
        "tasks_per_s": results.median(rates),
        "tasks_per_s_min": min(rates),
        "tasks_per_s_max": max(rates),
        "enqueue_per_s": results.median([r.enqueue_rate for r in runs]),
        "worker_cpu_ms_per_task": results.median([r.cpu_per_task for r in runs]) * 1000,
        "broker_cpu_ms_per_task": results.median(broker) * 1000 if broker else None,
        "worker_peak_rss_mib": max(r.worker_peak_rss for r in runs) / 2**20,
        "others_cores": results.median([r.others_cores for r in runs]),
        "runs": [asdict(r) for r in runs],
    }


def table(rows: Sequence[dict[str, Any]], tasks: int) -> Table:
    out = Table(title=f"throughput: one worker draining {tasks:,} no-op tasks (median of runs)")
    for name in ("broker", "worker", "task", "enqueue/s", "tasks/s", "range", "worker CPU/task", "broker CPU/task"):
        out.add_column(name, justify="left" if name in {"broker", "worker", "task"} else "right")
    out.add_column("peak RSS", justify="right")
    out.add_column("others' load", justify="right")
    for row in rows:
        broker_cpu = row["broker_cpu_ms_per_task"]
        out.add_row(
            row["broker"],
            f"{row['impl']} -P {row['pool']} -c {row['concurrency']}",
            row["task"].removeprefix("bench."),
            f"{row['enqueue_per_s']:,.0f}",
            f"[bold]{row['tasks_per_s']:,.0f}[/bold]",
            f"{row['tasks_per_s_min']:,.0f}-{row['tasks_per_s_max']:,.0f}",
            f"{row['worker_cpu_ms_per_task']:.3f} ms",
            f"{broker_cpu:.3f} ms" if broker_cpu is not None else "-",
            f"{row['worker_peak_rss_mib']:.1f} MiB",
            f"{row['others_cores']:.2f} cores",
        )
    return out


def targets(rows: Sequence[dict[str, Any]]) -> list[tuple[str, bool]]:
    """The project's throughput targets, each with whether this run met it."""

    def find(broker: str, impl: str, pool: str) -> dict[str, Any] | None:
        return next((r for r in rows if (r["broker"], r["impl"], r["pool"]) == (broker, impl, pool)), None)

    checks: list[tuple[str, bool]] = []
    rabbit = find("amqp", "celeriac", "asyncio")
    rabbit_celery = find("amqp", "celery", "prefork")
    if rabbit:
        if rabbit_celery:
            ratio = rabbit["tasks_per_s"] / rabbit_celery["tasks_per_s"]
            checks.append((f"RabbitMQ, celeriac asyncio >= 5x Celery prefork c=2: {ratio:.1f}x", ratio >= 5))
        rss = rabbit["worker_peak_rss_mib"]
        checks.append((f"RabbitMQ, celeriac asyncio worker RSS <= 50 MiB: {rss:.1f} MiB", rss <= 50))
    sqlite = find("sqlite", "celeriac", "asyncio")
    aio = find("redis", "celeriac", "asyncio")
    prefork = find("redis", "celery", "prefork")
    if sqlite:
        rate = sqlite["tasks_per_s"]
        checks.append((f"SQLite, celeriac asyncio >= 5,000/s: {rate:,.0f}/s", rate >= 5000))
    if aio:
        rate = aio["tasks_per_s"]
        checks.append((f"Redis, celeriac asyncio >= 4,000/s: {rate:,.0f}/s", rate >= 4000))
        if prefork:
            ratio = aio["tasks_per_s"] / prefork["tasks_per_s"]
            checks.append((f"Redis, celeriac asyncio >= 10x Celery prefork c=2: {ratio:.1f}x", ratio >= 10))
        cpu = aio["worker_cpu_ms_per_task"]
        checks.append((f"Redis, celeriac asyncio worker CPU <= 0.2 ms/task: {cpu:.3f} ms", cpu <= 0.2))
        rss = aio["worker_peak_rss_mib"]
        checks.append((f"Redis, celeriac asyncio worker RSS <= 50 MiB: {rss:.1f} MiB", rss <= 50))
    return checks


# -- command line -------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--broker", default="sqlite", help=f"sqlite, redis ({DEFAULT_REDIS}), amqp ({DEFAULT_AMQP}) or a URL"
    )
    parser.add_argument("--tasks", type=int, default=20000, help="no-op tasks per run (default 20000)")
    parser.add_argument("--impl", choices=("celeriac", "celery", "dramatiq"), default="celeriac")
    parser.add_argument("--pool", help="celeriac: asyncio (default), threads, solo; celery: prefork (default), ...")
    parser.add_argument("-c", "--concurrency", type=int, help="default 8; prefork: one per core")
    parser.add_argument("--task", choices=("async", "sync"), help="which no-op (default: async on asyncio)")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration; the table shows medians")
    parser.add_argument("--compare", action="store_true", help="the standard matrix; writes bench/results/")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help="the Redis URL --compare uses")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        metavar="PCT",
        help="before each run, wait (up to 3 min) until CPU pressure (PSI some avg10) is below PCT %%",
    )
    parser.add_argument("--profile", type=Path, help="also record py-spy stacks of each worker into this directory")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.runs < 1:
        parser.error("--tasks and --runs must be at least 1")
    return args


def configs_from(args: argparse.Namespace) -> list[Config]:
    if args.compare:
        return compare_amqp_matrix(DEFAULT_AMQP) if kind_of(args.broker) == "amqp" else compare_matrix(args.redis)
    pool = args.pool or {"celeriac": "asyncio", "celery": "prefork", "dramatiq": "threads"}[args.impl]
    spec = WorkerSpec(args.impl, pool, args.concurrency or default_concurrency(args.impl, pool))
    task = {"async": benchapp.NOOP_ASYNC, "sync": benchapp.NOOP_SYNC}.get(args.task or "", default_task(spec))
    broker = {"redis": args.redis, "amqp": DEFAULT_AMQP}.get(args.broker, args.broker)
    return [Config(broker, spec, task)]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops the workers, as Ctrl-C does
    try:
        configs = configs_from(args)
    except ValueError as exc:
        print(f"throughput.py: error: {exc}", file=sys.stderr)
        return 2
    uses_redis = any(kind_of(c.broker) == "redis" for c in configs)
    machine = results.machine(args.redis if uses_redis else None)
    runs: dict[Config, list[Run]] = {c: [] for c in configs}
    failures: list[dict[str, Any]] = []
    try:
        for repetition in range(args.runs):  # round-robin, so slow drifts in machine load spread over all configs
            for config in configs:
                profile = None
                if args.profile:
                    args.profile.mkdir(parents=True, exist_ok=True)
                    w = config.worker
                    profile = args.profile / f"{kind_of(config.broker)}-{w.impl}-{w.pool}-c{w.concurrency}.txt"
                if args.wait_quiet is not None:
                    wait_for_quiet(args.wait_quiet, max_wait=180.0)
                try:
                    run = asyncio.run(measure(config, args.tasks, profile))
                except Exception as exc:  # one broken run must not lose the others: report it and go on
                    failures.append({"config": config.label, "run": repetition + 1, "error": str(exc)})
                    console.print(f"[red]run {repetition + 1}/{args.runs} {config.label} failed:[/red] {exc}")
                    continue
                runs[config].append(run)
                console.print(
                    f"run {repetition + 1}/{args.runs} {config.label}: [bold]{run.rate:,.0f}[/bold] tasks/s, "
                    f"enqueue {run.enqueue_rate:,.0f}/s, {run.cpu_per_task * 1000:.3f} ms CPU/task, "
                    f"RSS {run.worker_peak_rss / 2**20:.1f} MiB, others' load {run.others_cores:.2f} cores"
                )
    except KeyboardInterrupt:
        print("interrupted; every process this run started has been stopped", file=sys.stderr)
        return 130
    rows = [summarize(config, done) for config, done in runs.items() if done]
    console.print(table(rows, args.tasks))
    checks = targets(rows) if args.compare else []
    for text, met in checks:
        console.print(f"  {'[green]met[/green] ' if met else '[red]MISS[/red]'}  {text}")
    for failure in failures:
        console.print(f"  [red]failed[/red]  run {failure['run']} of {failure['config']} (see above)")
    if args.compare:
        machine["loadavg_at_end"] = list(os.getloadavg())
        command = "python bench/throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)
        payload = {"command": command, "machine": machine, "tasks": args.tasks, "results": rows, "failures": failures}
        payload["targets"] = [{"target": text, "met": met} for text, met in checks]
        path = results.save("throughput", payload)
        console.print(f"results written to {Path(path).relative_to(HERE.parent)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
