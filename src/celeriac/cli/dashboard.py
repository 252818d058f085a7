"""``celeriac dashboard``: the web dashboard (needs the ``dashboard`` extra).

Loopback only unless ``--auth`` or ``--auth-header`` is given: a dashboard can revoke, purge and shut down.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from celeriac.app.app import App
from celeriac.errors import ConfigurationError


def add_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the verb."""
    parser: argparse.ArgumentParser = verbs.add_parser("dashboard", help="serve the web dashboard")
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=5555, help="port to listen on (5555)")
    parser.add_argument("--db", default="celeriac-dashboard.sqlite", help="the history file (SQLite)")
    parser.add_argument("--max-tasks", type=int, default=100_000, help="tasks kept in the history (100000)")
    parser.add_argument("--max-age", type=float, default=7 * 86400.0, help="seconds a task is kept (7 days)")
    parser.add_argument(
        "--auth", action="append", default=[], metavar="USER:PASSWORD[:ROLE]", help="a basic-auth user (repeatable)"
    )
    parser.add_argument("--auth-header", help="trust this reverse-proxy header as the user name")
    parser.add_argument("--auth-role-header", help="with --auth-header: the header carrying the user's role")
    parser.add_argument(
        "--redact", action="append", default=[], metavar="PATTERN", help="hide args of tasks/kwargs matching"
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, app_for: Callable[[argparse.Namespace], App]) -> int:
    """Serve until Ctrl-C."""
    try:
        import uvicorn

        from celeriac.dashboard.security import Access, Redactor, is_loopback, parse_users
        from celeriac.dashboard.store import EventStore
        from celeriac.dashboard.web import Dashboard
    except ImportError as exc:
        raise ConfigurationError(f"the dashboard needs its extra: pip install 'celeriac[dashboard]' ({exc})") from None
    if not 0 <= args.port <= 65535:
        raise ConfigurationError(f"--port must be 0..65535, not {args.port}")
    if args.max_tasks < 1 or args.max_age <= 0:
        raise ConfigurationError("--max-tasks and --max-age must be more than 0")
    if args.auth and args.auth_header:
        raise ConfigurationError("use --auth or --auth-header, not both")
    if args.auth_role_header and not args.auth_header:
        raise ConfigurationError("--auth-role-header applies to --auth-header only")
    access = Access(parse_users(args.auth), args.auth_header, args.auth_role_header)
    if not access.enabled and not is_loopback(args.address):
        raise ConfigurationError(f"--address {args.address} is not loopback: add --auth or --auth-header")
    if args.app is None and args.broker:
        app = App("dashboard", broker=args.broker, backend=args.result_backend)
    else:
        app = app_for(args)
    store = EventStore(args.db, args.max_tasks, args.max_age, Redactor(tuple(args.redact)) if args.redact else None)
    dashboard = Dashboard(app, store, access)
    logging.getLogger("celeriac.dashboard").info("history in %s", args.db)
    try:
        # Open live-update streams never end by themselves: give them 3 s on Ctrl-C, then close them.
        uvicorn.run(dashboard.asgi, host=args.address, port=args.port, log_level="warning", timeout_graceful_shutdown=3)
    finally:
        store.close()
    return 0
