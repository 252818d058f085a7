"""``celeriac events``: watch the cluster live — workers and task rates in a terminal view (rich), or every
raw event as one JSON line with ``--dump``.

On start it asks every worker for a heartbeat (the remote ``heartbeat`` command, as Celery's monitors do), so
workers show up at once. Workers only send task events with ``-E`` (or after ``control enable_events``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table

from celeriac.app.app import App
from celeriac.control.pidbox import Mailbox
from celeriac.errors import ConfigurationError
from celeriac.events.cluster import ClusterState
from celeriac.events.receiver import EventReceiver


def add_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the verb."""
    parser: argparse.ArgumentParser = verbs.add_parser("events", help="watch workers and tasks live")
    parser.add_argument("--dump", action="store_true", help="print every event as a JSON line instead")
    parser.add_argument("--freq", type=float, default=1.0, help="seconds between screen refreshes (1)")
    parser.set_defaults(run=run)
    return parser


def render(state: ClusterState, now: float | None = None, window: float = 10.0) -> Group:
    """The live view: a table of workers and one of task rates."""
    now = time.time() if now is None else now
    workers = Table(title="Workers", expand=True)
    for column in ("worker", "status", "active", "processed", "load", "last heartbeat"):
        workers.add_column(column)
    for name, info in sorted(state.workers.items()):
        alive = info.alive(now)
        status = "[green]online[/]" if alive else "[red]offline[/]"
        age = f"{now - info.last_heartbeat:.1f}s ago" if info.last_heartbeat else "-"
        load = " ".join(f"{value:.2f}" for value in info.loadavg) or "-"
        workers.add_row(name, status, str(info.active or 0), str(info.processed or 0), load, age)
    tasks = Table(title=f"Tasks (rates over {window:g}s)", expand=True)
    for column in ("task", "finished/s"):
        tasks.add_column(column)
    for name, rate in state.task_rates(window, now).items():
        tasks.add_row(name, f"{rate:.2f}")
    counts = ", ".join(f"{kind.removeprefix('task-')}: {n}" for kind, n in sorted(state.task_counts.items()))
    summary = f"events: {state.event_count}  throughput: {state.throughput(window, now):.2f}/s  {counts}"
    return Group(workers, tasks, summary)


async def watch(app: App, dump: bool, freq: float) -> None:
    """Receive events until interrupted; print them (``dump``) or keep the live view up to date."""
    transport = app.make_transport()
    async with transport, EventReceiver(transport, accept=list(app.conf.accept_content)) as receiver:
        await Mailbox(transport, signing_key=app.conf.control_signing_key).call(
            "heartbeat"
        )  # wake the workers: they answer with a heartbeat event
        if dump:
            async for event in receiver:
                print(json.dumps(event, sort_keys=True, default=str), flush=True)
            return
        state = ClusterState()
        with Live(render(state), refresh_per_second=max(1.0, 1 / freq), screen=False) as live:
            next_draw = 0.0
            async for event in receiver:
                state.event(event)
                if time.monotonic() >= next_draw:
                    live.update(render(state))
                    next_draw = time.monotonic() + freq


def run(args: argparse.Namespace, app_for: Callable[[argparse.Namespace], App]) -> int:
    """Watch until Ctrl-C."""
    if args.freq <= 0:
        raise ConfigurationError(f"--freq must be more than 0, not {args.freq}")
    app = app_for(args)
    try:
        asyncio.run(watch(app, args.dump, args.freq))
    except KeyboardInterrupt:
        print(file=sys.stderr)
    except BrokenPipeError:  # `celeriac events --dump | head`: the reader left, so do we
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
