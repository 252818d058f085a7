"""``celeriac status``: which workers answer a ping now (``-> node: OK`` each, then "N nodes online.")."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from celeriac.app.app import App
from celeriac.app.inspection import flatten
from celeriac.cli.remote import NO_REPLY, print_replies
from celeriac.errors import ConfigurationError


def add_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the verb."""
    parser: argparse.ArgumentParser = verbs.add_parser("status", help="list the workers online")
    parser.add_argument("-t", "--timeout", type=float, default=1.0, help="seconds to wait for replies (1)")
    parser.add_argument("-j", "--json", action="store_true", help="print the replies as one JSON object")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, app_for: Callable[[argparse.Namespace], App]) -> int:
    """Ping every node; exit 1 when none answers."""
    if args.timeout <= 0:
        raise ConfigurationError(f"-t/--timeout must be more than 0, not {args.timeout}")
    app = app_for(args)
    try:
        replies = flatten(app.control.ping(timeout=args.timeout))
    finally:
        app.close()
    if not replies:
        print(NO_REPLY, file=sys.stderr)
        return 1
    print_replies(replies, args.json, ping=True)
    return 0
