"""``celeriac shell``: an interactive Python shell with the app, its tasks and celeriac's canvas at hand.

IPython when it is installed (``--python`` forces the plain one), else the standard library's ``code`` console.
The names: ``app``, ``celeriac``, every task by its short name (``add`` for ``tasks.add``; on a clash, by its full
name only), ``signature``, ``chain``, ``group``, ``chord``.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from typing import Any

import celeriac
from celeriac.app.app import App


def add_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the verb."""
    parser: argparse.ArgumentParser = verbs.add_parser("shell", help="a Python shell with the app and its tasks")
    parser.add_argument("--python", action="store_true", help="the plain Python console even if IPython is there")
    parser.set_defaults(run=run)
    return parser


def namespace(app: App) -> dict[str, Any]:
    """What the shell starts with."""
    app.finalize()
    names: dict[str, Any] = {
        "app": app,
        "celeriac": celeriac,
        "signature": celeriac.signature,
        "chain": celeriac.chain,
        "group": celeriac.group,
        "chord": celeriac.chord,
    }
    short: dict[str, list[Any]] = {}
    for name in app.tasks.names():
        if name.startswith("celery."):
            continue  # the built-in canvas tasks
        short.setdefault(name.rsplit(".", 1)[-1], []).append(app.tasks[name])
    for name, tasks in short.items():
        if len(tasks) == 1 and name.isidentifier() and name not in names:
            names[name] = tasks[0]
    return names


def run(args: argparse.Namespace, app_for: Callable[[argparse.Namespace], App]) -> int:
    """Start the shell; its exit is the command's."""
    app = app_for(args)
    names = namespace(app)
    banner = f"celeriac {celeriac.__version__} shell: app {app.main or '__main__'}; names: {', '.join(sorted(names))}"
    try:
        if not args.python and importlib.util.find_spec("IPython") is not None:
            from IPython import start_ipython  # type: ignore[import-not-found,unused-ignore]

            start_ipython(argv=[], user_ns=names, display_banner=False)
        else:
            import code  # only for this verb

            code.interact(banner=banner, local=names, exitmsg="")
    finally:
        app.close()
    return 0
