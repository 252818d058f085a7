"""``celeriac call``: send a task by name and print its id."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from celeriac.app.app import App
from celeriac.app.options import SendOptions
from celeriac.errors import ConfigurationError


def add_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the verb."""
    parser: argparse.ArgumentParser = verbs.add_parser("call", help="send a task by name; prints its id")
    parser.add_argument("name", help="the task name, e.g. tasks.add")
    parser.add_argument("-a", "--args", default="[]", help="positional arguments as a JSON list")
    parser.add_argument("-k", "--kwargs", default="{}", help="keyword arguments as a JSON object")
    parser.add_argument("--countdown", type=float, help="run no sooner than this many seconds from now")
    parser.add_argument("--eta", help="run no sooner than this ISO 8601 time")
    parser.add_argument("--expires", type=float, help="discard if not started within this many seconds")
    parser.add_argument("--queue", help="the destination queue")
    parser.add_argument("--priority", type=int, help="message priority (0-255; Redis orders 0-9)")
    parser.set_defaults(run=run)
    return parser


def _json(option: str, text: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{option}: not valid JSON ({exc.msg})") from None
    if not isinstance(value, kind):
        raise ConfigurationError(f"{option}: must be a JSON {'list' if kind is list else 'object'}")
    return value


def run(args: argparse.Namespace, app_for: Callable[[argparse.Namespace], App]) -> int:
    """Send the task; print the id."""
    app = app_for(args)
    options = SendOptions()
    if args.countdown is not None:
        options["countdown"] = args.countdown
    if args.eta:
        try:
            options["eta"] = dt.datetime.fromisoformat(args.eta)
        except ValueError:
            raise ConfigurationError(f"--eta: not an ISO 8601 time: {args.eta!r}") from None
    if args.expires is not None:
        options["expires"] = args.expires
    if args.queue:
        options["queue"] = args.queue
    if args.priority is not None:
        if not 0 <= args.priority <= 255:
            raise ConfigurationError(f"--priority must be from 0 to 255, not {args.priority}")
        options["priority"] = args.priority
    result = app.send_task(args.name, _json("--args", args.args, list), _json("--kwargs", args.kwargs, dict), **options)
    print(result.id)
    app.close()
    return 0
