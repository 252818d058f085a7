"""Entry point of ``celeriac``: common options (``-A``, ``-b``, ``--result-backend``), verbs, one-line errors.

Every user mistake (a bad option value, an unimportable ``-A`` module, an unknown broker scheme) ends as one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from celeriac._version import __version__
from celeriac.app.app import App
from celeriac.cli import beat, call, dashboard, events, purge, remote, report, result, shell, status, worker
from celeriac.cli.loader import load_app
from celeriac.errors import CeleriacError, ConfigurationError

VERBS: tuple[Callable[[Any], argparse.ArgumentParser], ...] = (
    worker.add_parser,
    call.add_parser,
    result.add_parser,
    purge.add_parser,
    remote.add_parser,
    remote.add_control_parser,
    status.add_parser,
    events.add_parser,
    beat.add_parser,
    shell.add_parser,
    report.add_parser,
    dashboard.add_parser,
)


class UsageError(Exception):
    """A command-line mistake, already worded for the user."""


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line naming the option, raised instead of printed with the usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


def common_options(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """``-A``/``-b``/``--result-backend``, accepted before or after the verb."""
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("-A", "--app", default=default, help="the module (or module:attribute) of the App")
    parser.add_argument("-b", "--broker", default=default, help="broker URL (overrides the app's)")
    parser.add_argument("--result-backend", default=default, help="result backend URL (overrides the app's)")


def build_parser() -> Parser:
    """The whole command-line grammar."""
    parser = Parser(prog="celeriac", description="celeriac: an asyncio task queue that speaks Celery's protocol")
    parser.add_argument("--version", action="version", version=f"celeriac {__version__}")
    common_options(parser)
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=Parser)
    for add_parser in VERBS:
        sub = add_parser(verbs)
        common_options(sub, suppress=True)
    return parser


def app_for(args: argparse.Namespace) -> App:
    """Load the ``-A`` app and apply ``-b``/``--result-backend``."""
    app = load_app(args.app)
    if args.broker:
        app.conf.broker_url = args.broker
    if args.result_backend:
        app.conf.result_backend = args.result_backend
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (also used as the console script)."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and getattr(args, "arguments", None) is not None:
            # inspect/control words after an option (`control rate_limit -t 2 tasks.add 10/m`) are its arguments
            args.arguments += [word for word in extra if not word.startswith("-")]
            extra = [word for word in extra if word.startswith("-")]
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if not args.verb:
            parser.print_help()
            return 2
        command: Callable[[argparse.Namespace, Callable[[argparse.Namespace], App]], int] = args.run
        code = command(args, app_for)
        sys.stdout.flush()  # here, so a reader gone away is the BrokenPipeError below, not a message at exit
    except (UsageError, ConfigurationError) as exc:
        print(f"celeriac: error: {exc}" if isinstance(exc, ConfigurationError) else str(exc), file=sys.stderr)
        return 2
    except CeleriacError as exc:
        print(f"celeriac: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`celeriac inspect ... | head -1`): no traceback, and no second error when Python
        # flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    return code


def entry() -> None:
    """Console-script wrapper."""
    sys.exit(main())
