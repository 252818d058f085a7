"""``celeriac beat``: run the periodic-task service (any number may run; one fires), or ``--list`` the schedule."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

from celeriac import _loops
from celeriac.app.app import App
from celeriac.beat.service import Beat
from celeriac.cli.logs import parse_level, setup_logging


def add_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the verb."""
    parser: argparse.ArgumentParser = verbs.add_parser("beat", help="send periodic tasks (beat_schedule)")
    parser.add_argument("-l", "--loglevel", type=parse_level, default="INFO", help="DEBUG, INFO, WARNING, ...")
    parser.add_argument("-f", "--logfile", help="log to this file instead of stderr")
    parser.add_argument("--list", action="store_true", help="print the entries with their next run and exit")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, app_for: Callable[[argparse.Namespace], App]) -> int:
    """Run beat until SIGTERM/SIGINT (it gives its lease up on the way out), or print the schedule."""
    app = app_for(args)
    setup_logging(args.loglevel, args.logfile, app.conf.worker_log_format)
    beat = Beat(app)  # a bad beat_schedule is a one-line error here, before anything connects
    app.make_backend()
    loop = _loops.resolve(app.conf.worker_event_loop)
    if args.list:
        rows = _loops.run(_overview(app, beat), loop)
        Console().print(table(rows))
        return 0
    _loops.run(_serve(app, beat), loop)
    return 0


async def _overview(app: App, beat: Beat) -> list[tuple[Any, dt.datetime | None, dt.datetime]]:
    try:
        return await beat.overview()
    finally:
        await app.aclose()


async def _serve(app: App, beat: Beat) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, beat.stop)
    try:
        await beat.run()
    finally:
        await app.aclose()


def table(rows: list[tuple[Any, dt.datetime | None, dt.datetime]]) -> Table:
    """The schedule as a table: entry, task, rule, last settled slot, next slot (UTC)."""
    out = Table(title="beat schedule")
    for column in ("entry", "task", "schedule", "catch up", "last run (UTC)", "next run (UTC)"):
        out.add_column(column)
    for entry, done, following in rows:
        out.add_row(
            entry.name,
            entry.task,
            entry.schedule.describe(),
            entry.catch_up,
            _when(done) if done else "never",
            _when(following),
        )
    return out


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
