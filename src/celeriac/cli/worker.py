"""``celeriac worker``: start a worker with Celery's options, print the banner, run until a shutdown signal."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.table import Table

from celeriac import _loops
from celeriac._portal import portal
from celeriac._version import __version__
from celeriac.app.app import App
from celeriac.beat.service import Beat
from celeriac.beat.step import BeatStep
from celeriac.cli.daemon import DEFAULT_DETACHED_PIDFILE, detach, expand_path
from celeriac.cli.logs import parse_level, setup_logging
from celeriac.cli.purge import purge_queues
from celeriac.errors import ConfigurationError
from celeriac.pools import by_name
from celeriac.worker.autoscale import parse_autoscale
from celeriac.worker.worker import Worker, expand_hostname


def add_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the verb."""
    parser: argparse.ArgumentParser = verbs.add_parser("worker", help="start a worker")
    parser.add_argument("-l", "--loglevel", type=parse_level, default="WARNING", help="DEBUG, INFO, WARNING, ...")
    parser.add_argument("-f", "--logfile", help="log to this file instead of stderr (%%n, %%h... expand)")
    parser.add_argument("--pidfile", help="write the process id here (refuses to start if it is taken; %%n.pid)")
    parser.add_argument("-D", "--detach", action="store_true", help="run in the background (needs --logfile)")
    parser.add_argument("-c", "--concurrency", type=int, help="pool size (default 8; 1 for solo; CPUs for prefork)")
    parser.add_argument("-P", "--pool", help="asyncio (default), threads, solo or prefork")
    parser.add_argument("--loop", help="event loop: auto (default: uvloop when installed), asyncio or uvloop")
    parser.add_argument("-Q", "--queues", help="comma-separated queue names")
    parser.add_argument("-X", "--exclude-queues", help="comma-separated queues not to consume")
    parser.add_argument("--purge", action="store_true", help="delete the waiting messages of its queues first")
    parser.add_argument("-O", dest="optimization", help="'fair' (the only dispatch: a task goes to an idle slot)")
    parser.add_argument("-n", "--hostname", help="node name, e.g. w1@%%h")
    parser.add_argument("-E", "--task-events", action="store_true", default=None, help="send task events")
    parser.add_argument("--prefetch-multiplier", type=int, help="prefetch = concurrency x this (0: no limit)")
    parser.add_argument("--without-mingle", action="store_true", help="do not sync with other workers at start")
    parser.add_argument("--without-gossip", action="store_true", help="do not follow other workers' events")
    parser.add_argument("--without-heartbeat", action="store_true", help="send no worker-heartbeat events")
    parser.add_argument("--heartbeat-interval", type=float, help="seconds between heartbeats (default 2)")
    parser.add_argument("--statedb", help="file keeping revoked task ids across restarts")
    parser.add_argument("-B", "--beat", action="store_true", help="also run beat (periodic tasks; one fires)")
    # scaling, reload and health
    parser.add_argument("--autoscale", metavar="MAX,MIN", help="pool size follows the work between MIN and MAX")
    parser.add_argument("--reload", action="store_true", help="restart when a source file of the app changes (dev)")
    parser.add_argument("--health-port", type=int, help="serve /healthz and /readyz on this port")
    parser.add_argument("--health-address", help="address of the health server (default 127.0.0.1)")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port ([metrics] extra)")
    parser.add_argument("--metrics-address", help="address of the metrics server (default 127.0.0.1)")
    # Children and time limits (Celery's flags): each sets its setting for this worker.
    parser.add_argument("--max-tasks-per-child", type=int, help="prefork: replace a child after this many tasks")
    parser.add_argument("--max-memory-per-child", type=int, help="prefork: replace a child above this RSS (KiB)")
    parser.add_argument("--time-limit", type=float, help="hard time limit of every task, seconds")
    parser.add_argument("--soft-time-limit", type=float, help="soft time limit of every task, seconds")
    parser.set_defaults(run=run)
    return parser


@contextlib.contextmanager
def pidfile(path: str | None) -> Iterator[None]:
    """Hold ``path`` with our pid for the worker's life; refuse a pidfile of a live process."""
    if not path:
        yield
        return
    with contextlib.suppress(FileNotFoundError, ValueError):
        with open(path) as handle:
            other = int(handle.read().strip() or 0)
        if other and other != os.getpid():
            try:
                os.kill(other, 0)
            except ProcessLookupError:
                pass  # stale pidfile
            else:
                raise ConfigurationError(f"--pidfile {path}: already held by running process {other}")
    try:
        with open(path, "w") as handle:
            handle.write(f"{os.getpid()}\n")
    except OSError as exc:
        raise ConfigurationError(f"--pidfile {path}: {exc.strerror}") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def banner(app: App, worker: Worker, loop: str) -> Table:
    """The start-up banner: app, transport (password hidden), results, pool, event loop, queues, tasks."""
    table = Table(title=f"celeriac {__version__}  {worker.hostname}", show_header=False, box=None)
    table.add_column(style="bold cyan")
    table.add_column()
    table.add_row("app", f"{app.main or '__main__'}")
    table.add_row("transport", app.redacted_broker_url())
    table.add_row("results", app.redacted_backend_url() or "disabled")
    if worker.autoscale is not None:
        high, low = worker.autoscale
        table.add_row("concurrency", f"{low} to {high} ({worker.pool_name}, autoscale)")
    else:
        table.add_row("concurrency", f"{worker.concurrency} ({worker.pool_name})")
    table.add_row("event loop", loop)
    table.add_row("prefetch", str(worker.prefetch_count or "unlimited"))
    table.add_row("task events", "ON" if worker.send_events else "OFF (enable with -E)")
    table.add_row("queues", ", ".join(worker.queues))
    table.add_row("tasks", "\n".join(app.tasks.names()) or "(none registered)")
    return table


_LIMIT_FLAGS = (
    ("max_tasks_per_child", "worker_max_tasks_per_child"),
    ("max_memory_per_child", "worker_max_memory_per_child"),
    ("time_limit", "task_time_limit"),
    ("soft_time_limit", "task_soft_time_limit"),
)


def apply_limits(app: App, args: argparse.Namespace) -> None:
    """``--max-tasks-per-child`` & co. set their settings; a value of 0 or less is a one-line error."""
    for flag, setting in _LIMIT_FLAGS:
        value = getattr(args, flag)
        if value is None:
            continue
        if value <= 0:
            raise ConfigurationError(f"--{flag.replace('_', '-')} must be more than 0, not {value}")
        setattr(app.conf, setting, value)


def run(args: argparse.Namespace, app_for: Callable[[argparse.Namespace], App]) -> int:
    """Build and run the worker; returns its exit code."""
    app = app_for(args)
    nodename = expand_hostname(args.hostname or app.conf.worker_hostname or "celeriac@%h")
    if args.optimization is not None and args.optimization != "fair":
        raise ConfigurationError(
            f"-O {args.optimization}: only 'fair' is supported (a task always goes to an idle pool slot)"
        )
    if args.detach and not args.logfile:
        raise ConfigurationError("-D/--detach needs --logfile: a detached worker has no terminal to log to")
    logfile = expand_path(args.logfile, nodename) if args.logfile else None
    pid_path = args.pidfile or (DEFAULT_DETACHED_PIDFILE if args.detach else None)
    pid_path = expand_path(pid_path, nodename) if pid_path else None
    setup_logging(args.loglevel, logfile, app.conf.worker_log_format)
    if args.pool:
        by_name(args.pool)  # a bad -P is a one-line error before anything starts
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigurationError(f"-c/--concurrency must be at least 1, not {args.concurrency}")
    if args.heartbeat_interval is not None and args.heartbeat_interval <= 0:
        raise ConfigurationError(f"--heartbeat-interval must be more than 0, not {args.heartbeat_interval}")
    if args.autoscale is not None:
        parse_autoscale(args.autoscale, "--autoscale")  # a bad value is a one-line error naming the option
    if args.health_port is not None and not 0 <= args.health_port <= 65535:
        raise ConfigurationError(f"--health-port must be a TCP port (0-65535), not {args.health_port}")
    apply_limits(app, args)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
    if args.exclude_queues:
        excluded = {q.strip() for q in args.exclude_queues.split(",") if q.strip()}
        queues = [q for q in (queues or [app.conf.task_default_queue]) if q not in excluded]
        if not queues:
            raise ConfigurationError("-X/--exclude-queues leaves no queue to consume")
    loop = _loops.resolve(args.loop, "--loop") if args.loop else _loops.resolve(app.conf.worker_event_loop)
    app.make_transport()  # an unknown broker scheme is a one-line error before the banner
    backend = app.make_backend() if app.backend_url else None  # a bad backend URL: one line, before the banner
    if args.beat:
        # A bad beat_schedule or a backend that cannot hold the lease is a one-line error before the worker
        # starts (and before it takes any message from the broker).
        Beat(app)
        if backend is not None:
            Beat.require_leases(backend)
        app.steps["worker"].append(BeatStep)
    app.finalize()
    if args.purge:
        count = portal.run(purge_queues(app, queues or [app.conf.task_default_queue]))
        Console(stderr=True).print(f"Purged {count} message{'s' if count != 1 else ''} before starting.")
    if args.detach:
        detach()  # a portal loop started above (--purge) is restarted on first use: its thread is gone after a fork
    with pidfile(pid_path):
        worker, code = _loops.run(_serve(app, args, queues, loop), loop)
    if worker.restart_reason is not None:
        restart(worker.restart_reason)
    if worker.cut_short:
        # Sync task bodies may still block pool threads that Python cannot stop; the interpreter would wait
        # for them at exit. Their messages are already back on the queue, so leave now.
        logging.shutdown()
        os._exit(code)
    return code


def restart(reason: str) -> None:
    """Replace this process by a fresh run of the same command (``--reload``): every module is imported anew."""
    logging.getLogger("celeriac.worker").warning("Restarting (%s)", reason)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)


async def _serve(app: App, args: argparse.Namespace, queues: list[str] | None, loop: str) -> tuple[Worker, int]:
    worker = Worker(
        app,
        hostname=args.hostname,
        concurrency=args.concurrency,
        pool=args.pool,
        queues=queues,
        prefetch_multiplier=args.prefetch_multiplier,
        send_events=args.task_events,
        heartbeat_interval=args.heartbeat_interval,
        without_mingle=args.without_mingle,
        without_gossip=args.without_gossip,
        without_heartbeat=args.without_heartbeat,
        statedb=args.statedb,
        autoscale=args.autoscale,
        health_port=args.health_port,
        health_address=args.health_address,
        metrics_port=args.metrics_port,
        metrics_address=args.metrics_address,
        reload=args.reload,
    )
    Console(stderr=True).print(banner(app, worker, loop))
    return worker, await worker.run()
