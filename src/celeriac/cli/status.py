"""``celeriac status``: which workers answer a ping now (``-> node: OK`` each, then "N nodes online.").

``--node NAME`` checks one worker's heartbeat instead, for a liveness probe: it asks that worker for a heartbeat
(the ``heartbeat`` command, as monitors do) and listens for one at most ``--max-age`` seconds (default: twice the
heartbeat interval, Celery's expiry window). Exit 0 with the heartbeat's age; exit 1 saying why when none comes,
when the only ones are older than that (stale: sent while the worker was cut off), or when the worker says it
went offline.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

from celeriac.app.app import App
from celeriac.app.inspection import flatten
from celeriac.cli.remote import NO_REPLY, print_replies
from celeriac.control.pidbox import Mailbox
from celeriac.errors import ConfigurationError
from celeriac.events.receiver import EventReceiver
from celeriac.worker.worker import expand_hostname


def add_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the verb."""
    parser: argparse.ArgumentParser = verbs.add_parser("status", help="list the workers online")
    parser.add_argument("-t", "--timeout", type=float, default=1.0, help="seconds to wait for replies (1)")
    parser.add_argument("-j", "--json", action="store_true", help="print the replies as one JSON object")
    parser.add_argument("--node", help="check this worker's heartbeat; exit 1 when it is stale or missing")
    parser.add_argument("--max-age", type=float, help="seconds a heartbeat stays fresh (2 x heartbeat interval)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, app_for: Callable[[argparse.Namespace], App]) -> int:
    """Ping every node (exit 1 when none answers), or check the heartbeat of ``--node``."""
    if args.timeout <= 0:
        raise ConfigurationError(f"-t/--timeout must be more than 0, not {args.timeout}")
    if args.max_age is not None and args.max_age <= 0:
        raise ConfigurationError(f"--max-age must be more than 0, not {args.max_age}")
    if args.max_age is not None and not args.node:
        raise ConfigurationError("--max-age applies to --node only")
    app = app_for(args)
    if args.node:
        node = expand_hostname(args.node)
        max_age = args.max_age or 2 * float(app.conf.worker_heartbeat_interval)
        healthy, text = asyncio.run(check_heartbeat(app, node, max_age))
        print(text, file=sys.stdout if healthy else sys.stderr)
        return 0 if healthy else 1
    try:
        replies = flatten(app.control.ping(timeout=args.timeout))
    finally:
        app.close()
    if not replies:
        print(f"{NO_REPLY} (broker: {app.redacted_broker_url()})", file=sys.stderr)
        return 1
    print_replies(replies, args.json, ping=True)
    return 0


async def check_heartbeat(app: App, node: str, max_age: float) -> tuple[bool, str]:
    """Whether ``node`` sends a heartbeat younger than ``max_age`` seconds within that time, and what to say."""
    transport = app.make_transport()
    stale: float | None = None
    async with transport, EventReceiver(transport, ("worker.#",), accept=list(app.conf.accept_content)) as events:
        mailbox = Mailbox(transport, signing_key=app.conf.control_signing_key)
        await mailbox.call("heartbeat", destination=[node])  # a live worker answers with a heartbeat event now
        deadline = time.monotonic() + max_age
        try:
            async with asyncio.timeout(max_age):
                async for event in events:
                    if event.get("hostname") != node:
                        continue
                    if event.get("type") == "worker-offline":
                        return False, f"{node}: went offline (shutting down)"
                    if event.get("type") not in ("worker-heartbeat", "worker-online"):
                        continue
                    age = _age(event)
                    if age <= max_age:
                        return True, f"-> {node}: OK (heartbeat {age:.1f}s ago)"
                    stale = age if stale is None else min(stale, age)
        except TimeoutError:
            pass
    waited = max_age - max(0.0, deadline - time.monotonic())
    if stale is not None:
        return False, f"{node}: heartbeat is stale ({stale:.1f}s old; fresh means under {max_age:g}s)"
    return False, f"{node}: no heartbeat within {waited:.1f}s (not running, not connected, or stuck)"


def _age(event: dict[str, Any]) -> float:
    stamp = event.get("timestamp")
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        return float("inf")
    return max(0.0, time.time() - float(stamp))
