"""``celeriac report``: what to paste into a bug report: versions, platform, the app's broker and result backend
(passwords hidden), the event loop, which optional packages are installed, and the settings changed from the
defaults (secrets hidden)."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable
from typing import Any

from celeriac import _loops
from celeriac._redact import redact
from celeriac._version import __version__
from celeriac.app.app import App

OPTIONAL = ("redis", "hiredis", "orjson", "uvloop", "pamqp", "msgpack", "croniter", "ephem", "watchfiles", "celery")
"""Packages whose presence changes what celeriac can do or how fast (the extras)."""


def add_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the verb."""
    parser: argparse.ArgumentParser = verbs.add_parser("report", help="versions and settings for a bug report")
    parser.set_defaults(run=run)
    return parser


def _version(package: str) -> str:
    import importlib.metadata  # only for this verb: it pulls email, zipfile and csv into every worker otherwise

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def report(app: App) -> str:
    """The report text."""
    lines = [
        f"celeriac: {__version__}",
        f"python: {sys.version.split()[0]} ({platform.python_implementation()})",
        f"platform: {platform.platform()}",
        f"app: {app.main or '__main__'}",
        f"broker: {app.redacted_broker_url()}",
        f"results: {app.redacted_backend_url() or 'disabled'}",
        f"event loop: {_loops.resolve(app.conf.worker_event_loop)}",
        "packages: " + ", ".join(f"{name} {_version(name)}" for name in OPTIONAL),
        "settings changed from the defaults:",
    ]
    changes = {key: redact(value, key) for key, value in sorted(app.conf.changes().items())}
    lines += [f"  {key} = {json.dumps(value, default=repr)}" for key, value in changes.items()] or ["  (none)"]
    return "\n".join(lines)


def run(args: argparse.Namespace, app_for: Callable[[argparse.Namespace], App]) -> int:
    """Print the report."""
    app = app_for(args)
    try:
        print(report(app))
    finally:
        app.close()
    return 0
