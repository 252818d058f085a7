"""Round-trip latency of sequential ``delay().get()`` calls against one running worker: p50, p90, p99.

Usage (from the repository root, with .venv's python)::

    python bench/latency.py --broker redis --count 1000                       # celeriac client and worker
    python bench/latency.py --broker redis --client celery --impl celery --pool prefork -c 2
    python bench/latency.py --compare                  # the standard matrix; writes bench/results/<date>.json
    python bench/latency.py --compare --broker amqp    # RabbitMQ: each client with its own worker, and Dramatiq

Method: one worker process runs (`workers`, the same command lines as throughput.py) on a fresh place
(`brokers`). A client makes ``--warmup`` untimed calls (the first also waits for the worker to start), then
``--count`` timed ones, one after another: ``sentinel.delay(i).get()``, i.e. publish a task, the worker runs
it and stores the result, the client is told and reads it. Each sample is the wall time of one such call
(``time.perf_counter``). Clients: celeriac's sync API in this process (``delay`` and ``get`` run on its portal
loop), or Celery's client (`celery_client`, in Celery's own virtualenv). Both clients talk to both workers:
they speak the same protocol. Percentiles are nearest-rank.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

import benchapp
import celeryenv
import dramatiqenv
import results
from brokers import DEFAULT_AMQP, DEFAULT_REDIS, Place, broker_pid, isolated, kind_of
from procs import Managed, Usage, reaped_children_cpu_seconds, wait_for_quiet
from throughput import default_concurrency
from workers import HERE, WorkerSpec, clean_env, start_worker

CLIENTS = ("celeriac", "celery", "dramatiq")
RESULT_TIMEOUT = 120.0  # also covers the worker's start-up on the first warm-up call

console = Console(width=None if sys.stdout.isatty() else 150)


@dataclass(frozen=True)
class Case:
    """A worker, and the clients that take turns calling it."""

    broker: str
    worker: WorkerSpec
    clients: tuple[str, ...]


def celeriac_samples(place: Place, count: int, warmup: int) -> list[float]:
    """``count`` timed ``sentinel.delay(i).get()`` round trips with celeriac's sync API."""
    bench = benchapp.create_app(place.url, place.keyprefix, place.result_url)
    try:
        for i in range(warmup):
            bench.sentinel.delay(i).get(timeout=RESULT_TIMEOUT)
        samples = []
        for i in range(count):
            started = time.perf_counter()
            bench.sentinel.delay(i).get(timeout=RESULT_TIMEOUT)
            samples.append(time.perf_counter() - started)
        return samples
    finally:
        bench.app.close()


def celery_samples(place: Place, count: int, warmup: int, dramatiq: bool = False) -> list[float]:
    """The same loop run by Celery's client (or Dramatiq's), in its own virtualenv."""
    env, script = (dramatiqenv, "dramatiq_client.py") if dramatiq else (celeryenv, "celery_client.py")
    python = env.ensure()
    argv = [str(python), str(HERE / script), "latency"]
    argv += ["--count", str(count), "--warmup", str(warmup)]
    log = place.workdir / script.replace(".py", ".log")
    with Managed(argv, env=clean_env(place), cwd=HERE, log_path=log, stdout_pipe=True) as client:
        line = client.stdout.readline()
        if not line:
            raise RuntimeError(f"the {script} client failed:\n{client.log_tail()}")
        samples: list[float] = json.loads(line)["samples"]
    return samples


def dramatiq_samples(place: Place, count: int, warmup: int) -> list[float]:
    """The same loop run by Dramatiq's client."""
    return celery_samples(place, count, warmup, dramatiq=True)


def measure(case: Case, count: int, warmup: int) -> list[dict[str, Any]]:
    """Start the worker, let each client take its turn, stop the worker; one summary per client."""
    rows = []
    with isolated(case.broker) as place, start_worker(case.worker, place) as worker:
        server_pid = broker_pid(place)
        for client in case.clients:
            take = {"celeriac": celeriac_samples, "celery": celery_samples, "dramatiq": dramatiq_samples}[client]
            before, children_before = Usage.now(worker.pid, server_pid), reaped_children_cpu_seconds()
            try:
                samples = sorted(take(place, count, warmup))
            except Exception as exc:
                raise RuntimeError(f"{client} client against {case.worker.label}: {exc}\n{worker.log_tail()}") from exc
            used = Usage.now(worker.pid, server_pid) - before
            client_cpu = reaped_children_cpu_seconds() - children_before  # the Celery client, once it exited
            others = max(0.0, used.machine - used.worker - used.broker - used.own - client_cpu) / used.wall
            rows.append(summarize(case, client, samples) | {"others_cores": others})
            console.print(
                f"{kind_of(case.broker)} / {client} client -> {case.worker.label}: "
                f"p50 {rows[-1]['p50_ms']:.2f} ms, p99 {rows[-1]['p99_ms']:.2f} ms, "
                f"others' load {others:.2f} cores"
            )
        worker.stop()
    return rows


def summarize(case: Case, client: str, samples: Sequence[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in samples]
    return {
        "broker": kind_of(case.broker),
        "client": client,
        "impl": case.worker.impl,
        "pool": case.worker.pool,
        "concurrency": case.worker.concurrency,
        "count": len(ms),
        "p50_ms": results.percentile(ms, 50),
        "p90_ms": results.percentile(ms, 90),
        "p99_ms": results.percentile(ms, 99),
        "max_ms": ms[-1],
        "mean_ms": sum(ms) / len(ms),
    }


def compare_matrix(redis_url: str) -> list[Case]:
    """Both clients against celeriac asyncio/threads and Celery prefork c=2/threads on Redis; celeriac on SQLite."""
    redis_workers = [
        WorkerSpec("celeriac", "asyncio", 8),
        WorkerSpec("celeriac", "threads", 8),
        WorkerSpec("celery", "prefork", 2),
        WorkerSpec("celery", "threads", 8),
    ]
    cases = [Case(redis_url, w, CLIENTS) for w in redis_workers]
    cases += [Case("sqlite", w, ("celeriac",)) for w in redis_workers if w.impl == "celeriac"]
    return cases


def compare_amqp_matrix(amqp_url: str) -> list[Case]:
    """RabbitMQ: celeriac's and Celery's clients against celeriac asyncio and Celery prefork c=2; Dramatiq's own."""
    return [
        Case(amqp_url, WorkerSpec("celeriac", "asyncio", 8), ("celeriac", "celery")),
        Case(amqp_url, WorkerSpec("celery", "prefork", 2), ("celeriac", "celery")),
        Case(amqp_url, WorkerSpec("dramatiq", "threads", 8), ("dramatiq",)),
    ]


def table(rows: Sequence[dict[str, Any]], count: int) -> Table:
    out = Table(title=f"latency: {count:,} sequential delay().get() round trips, one worker")
    for name in ("broker", "client", "worker", "p50", "p90", "p99", "max", "mean", "others' load"):
        out.add_column(name, justify="left" if name in {"broker", "client", "worker"} else "right")
    for row in rows:
        out.add_row(
            row["broker"],
            row["client"],
            f"{row['impl']} -P {row['pool']} -c {row['concurrency']}",
            f"[bold]{row['p50_ms']:.2f} ms[/bold]",
            f"{row['p90_ms']:.2f} ms",
            f"{row['p99_ms']:.2f} ms",
            f"{row['max_ms']:.1f} ms",
            f"{row['mean_ms']:.2f} ms",
            f"{row['others_cores']:.2f} cores",
        )
    return out


def targets(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latency target (p50 <= 1 ms, celeriac client and asyncio worker on Redis) and whether it was met."""
    checks = []
    for broker, name, limit in (("redis", "Redis", 1.0), ("amqp", "RabbitMQ", 1.5)):
        key = (broker, "celeriac", "celeriac", "asyncio")
        own = next((r for r in rows if (r["broker"], r["client"], r["impl"], r["pool"]) == key), None)
        if own is not None:
            text = f"{name}, celeriac client -> celeriac asyncio worker, p50 <= {limit:g} ms: {own['p50_ms']:.2f} ms"
            checks.append({"target": text, "met": own["p50_ms"] <= limit})
    return checks


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--broker", default="sqlite", help=f"sqlite, redis ({DEFAULT_REDIS}), amqp ({DEFAULT_AMQP}) or a URL"
    )
    parser.add_argument("--count", type=int, default=1000, help="timed round trips (default 1000)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed round trips first (default 20)")
    parser.add_argument("--client", choices=CLIENTS, default="celeriac")
    parser.add_argument("--impl", choices=("celeriac", "celery", "dramatiq"), default="celeriac", help="the worker")
    parser.add_argument("--pool", help="celeriac: asyncio (default), threads, solo; celery: prefork (default), ...")
    parser.add_argument("-c", "--concurrency", type=int, help="default 8; prefork: one per core")
    parser.add_argument("--compare", action="store_true", help="the standard matrix; writes bench/results/")
    parser.add_argument("--redis", default=DEFAULT_REDIS, help="the Redis URL --compare uses")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        metavar="PCT",
        help="before each worker, wait (up to 3 min) until CPU pressure (PSI some avg10) is below PCT %%",
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.warmup < 1:
        parser.error("--count and --warmup must be at least 1")
    return args


def cases_from(args: argparse.Namespace) -> list[Case]:
    if args.compare:
        return compare_amqp_matrix(DEFAULT_AMQP) if kind_of(args.broker) == "amqp" else compare_matrix(args.redis)
    pool = args.pool or {"celeriac": "asyncio", "celery": "prefork", "dramatiq": "threads"}[args.impl]
    spec = WorkerSpec(args.impl, pool, args.concurrency or default_concurrency(args.impl, pool))
    broker = {"redis": args.redis, "amqp": DEFAULT_AMQP}.get(args.broker, args.broker)
    if args.client == "celery" and kind_of(broker) == "sqlite":
        raise ValueError("the Celery client needs --broker redis or amqp")
    dramatiq = args.impl == "dramatiq"
    if (args.client == "dramatiq") != dramatiq or (dramatiq and kind_of(broker) != "amqp"):
        raise ValueError("the Dramatiq client and worker go together, on --broker amqp")
    return [Case(broker, spec, (args.client,))]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops the worker, as Ctrl-C does
    try:
        cases = cases_from(args)
    except ValueError as exc:
        print(f"latency.py: error: {exc}", file=sys.stderr)
        return 2
    uses_redis = any(kind_of(c.broker) == "redis" for c in cases)
    machine = results.machine(args.redis if uses_redis else None)
    rows: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    try:
        for case in cases:
            if args.wait_quiet is not None:
                wait_for_quiet(args.wait_quiet, max_wait=180.0)
            try:
                rows += measure(case, args.count, args.warmup)
            except Exception as exc:  # one broken worker must not lose the other cases: report it and go on
                failures.append({"worker": case.worker.label, "broker": kind_of(case.broker), "error": str(exc)})
                console.print(f"[red]{kind_of(case.broker)} / {case.worker.label} failed:[/red] {exc}")
    except KeyboardInterrupt:
        print("interrupted; every process this run started has been stopped", file=sys.stderr)
        return 130
    console.print(table(rows, args.count))
    if args.compare:
        checks = targets(rows)
        for check in checks:
            console.print(f"  {'[green]met[/green] ' if check['met'] else '[red]MISS[/red]'}  {check['target']}")
        machine["loadavg_at_end"] = list(os.getloadavg())
        command = "python bench/latency.py " + " ".join(sys.argv[1:] if argv is None else argv)
        payload = {"command": command, "machine": machine, "count": args.count, "results": rows, "targets": checks}
        payload["failures"] = failures
        path = results.save("latency", payload)
        console.print(f"results written to {path.relative_to(HERE.parent)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
