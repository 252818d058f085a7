"""``celeriac result``: print a task's state and result (``--wait`` blocks until it is ready)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rich.console import Console

from celeriac.app.app import App
from celeriac.app.result import AsyncResult


def add_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the verb."""
    parser: argparse.ArgumentParser = verbs.add_parser("result", help="print a task's state and result")
    parser.add_argument("task_id")
    parser.add_argument("--wait", action="store_true", help="wait until the task is ready")
    parser.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many s")
    parser.add_argument("--traceback", action="store_true", help="also print the traceback of a failure")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, app_for: Callable[[argparse.Namespace], App]) -> int:
    """Print ``STATE`` and the result (or the error) of the task."""
    app = app_for(args)
    result: AsyncResult[Any] = app.AsyncResult(args.task_id)
    if args.wait:
        result.get(timeout=args.timeout, propagate=False)
    meta = result.meta
    console = Console(highlight=False)
    console.print(f"{meta['status']}", style="bold")
    if meta["status"] in ("FAILURE", "REVOKED", "RETRY") and isinstance(meta["result"], dict):
        value = meta["result"]
        console.print(f"{value.get('exc_type')}: {', '.join(map(str, value.get('exc_message') or []))}")
        if args.traceback and meta["traceback"]:
            console.print(meta["traceback"])
    elif meta["status"] != "PENDING":
        console.print(repr(meta["result"]))
    app.close()
    return 0
