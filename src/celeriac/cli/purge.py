"""``celeriac purge``: delete every waiting message from the worker's queues."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from celeriac._portal import portal
from celeriac.app.app import App


def add_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the verb."""
    parser: argparse.ArgumentParser = verbs.add_parser("purge", help="delete all waiting messages")
    parser.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    parser.add_argument("-Q", "--queues", help="comma-separated queues (default: the default queue)")
    parser.set_defaults(run=run)
    return parser


async def purge_queues(app: App, queues: list[str]) -> int:
    """Delete every waiting message of ``queues``; how many went."""
    transport = app.make_transport()
    async with transport:
        counts = [await transport.purge(queue) for queue in queues]
    return sum(counts)


def run(args: argparse.Namespace, app_for: Callable[[argparse.Namespace], App]) -> int:
    """Purge after confirmation (or ``-f``); print how many messages went."""
    app = app_for(args)
    queues = [q.strip() for q in (args.queues or app.conf.task_default_queue).split(",") if q.strip()]
    if not args.force:
        if not sys.stdin.isatty():
            print("celeriac: error: refusing to purge without -f (no terminal to confirm on)", file=sys.stderr)
            return 2
        answer = input(f"Delete all waiting messages in {', '.join(queues)}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing purged.")
            return 1
    count = portal.run(purge_queues(app, queues))
    print(f"Purged {count} message{'s' if count != 1 else ''} from {len(queues)} queue{'s' * (len(queues) != 1)}.")
    return 0
