"""``celeriac inspect`` and ``celeriac control``: send one remote-control command, print the replies.

``celeriac -A tasks inspect stats -d w1@host -t 2 --json``; ``celeriac -A tasks control rate_limit tasks.add
10/m``. Positional words become the command's declared arguments (``control revoke id1 id2``). Each reply is
printed as Celery prints it (``-> node: OK`` and the text, or the value as JSON); with ``--json`` the replies
are one JSON object ``{node: reply}``. No reply within the timeout: one line on stderr, exit code 1.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable
from typing import Any

from celeriac.app.app import App
from celeriac.app.inspection import flatten
from celeriac.control.builtin import with_builtins
from celeriac.control.commands import Command, CommandRegistry, Kind
from celeriac.errors import ConfigurationError

NO_REPLY = "Error: No nodes replied within time constraint"
CAST_ONLY = frozenset({"shutdown"})  # commands whose nodes never answer


def known_commands() -> CommandRegistry:
    """The commands the verbs know: the built-ins (the CLI parses its words before an app is loaded)."""
    return with_builtins()


def add_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the ``inspect`` verb (``control`` is registered by `add_control_parser`)."""
    return _add(verbs, Kind.INSPECT, "ask workers about themselves (ping, active, stats, ...)")


def add_control_parser(verbs: Any) -> argparse.ArgumentParser:
    """Register the ``control`` verb."""
    parser = _add(verbs, Kind.CONTROL, "change workers at run time (revoke, rate_limit, shutdown, ...)")
    parser.add_argument("--terminate", action="store_true", help="revoke: also stop the task if it runs")
    parser.add_argument("--signal", default="SIGTERM", help="revoke --terminate: the signal name (SIGTERM)")
    return parser


def _add(verbs: Any, kind: Kind, text: str) -> argparse.ArgumentParser:
    names = ", ".join(known_commands().names(kind))
    parser: argparse.ArgumentParser = verbs.add_parser(kind.value, help=text, description=f"commands: {names}")
    parser.add_argument("command", help=f"one of: {names}")
    parser.add_argument("arguments", nargs="*", help="the command's arguments")
    parser.add_argument("-d", "--destination", help="comma-separated node names (default: every node)")
    parser.add_argument("-t", "--timeout", type=float, default=1.0, help="seconds to wait for replies (1)")
    parser.add_argument("-j", "--json", action="store_true", help="print the replies as one JSON object")
    parser.set_defaults(run=run, kind=kind)
    return parser


def command_for(kind: Kind, name: str, commands: CommandRegistry | None = None) -> Command:
    """The command ``name`` of ``kind`` in ``commands`` (default: the built-ins); a one-line ConfigurationError
    with a suggestion if there is none."""
    commands = commands if commands is not None else known_commands()
    command = commands.get(name)
    if command is None or command.kind is not kind:
        known = commands.names(kind)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (choose from {', '.join(known)})"
        raise ConfigurationError(f"unknown {kind.value} command {name!r}{hint}")
    return command


def arguments_for(command: Command, args: argparse.Namespace) -> dict[str, Any]:
    """The request arguments from the positional words and the verb's options."""
    try:
        arguments = command.from_words(args.arguments)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    if command.name in ("revoke", "terminate"):
        if not arguments.get("task_id"):
            raise ConfigurationError(f"{command.name}: give at least one task id")
        arguments["signal"] = args.signal
        if command.name == "revoke":
            arguments["terminate"] = bool(args.terminate)
    return arguments


def describe(reply: Any) -> tuple[str, str]:
    """``(status, text)`` of one node's reply, as Celery's CLI shows it."""
    if isinstance(reply, dict) and set(reply) == {"ok"}:
        value = reply["ok"]
        return "OK", value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
    if isinstance(reply, dict) and set(reply) == {"error"}:
        return "ERROR", str(reply["error"])
    return "OK", json.dumps(reply, indent=2, sort_keys=True, default=str)


def print_replies(replies: dict[str, Any], as_json: bool, ping: bool = False) -> None:
    """Print ``{node: reply}`` for a person (or as one JSON object)."""
    if as_json:
        print(json.dumps(replies, sort_keys=True, default=str))
        return
    for node, reply in sorted(replies.items()):
        status, text = describe(reply)
        print(f"->  {node}: {status}")
        for line in text.splitlines() or [""]:
            print(f"        {line}")
    if ping:
        count = len(replies)
        print(f"\n{count} node{'s' if count != 1 else ''} online.")


def run(args: argparse.Namespace, app_for: Callable[[argparse.Namespace], App]) -> int:
    """Send the command; print the replies."""
    kind: Kind = args.kind
    app = app_for(args)
    command = command_for(kind, args.command, app.control_commands)  # the app's own commands too
    arguments = arguments_for(command, args)
    if args.timeout <= 0:
        raise ConfigurationError(f"-t/--timeout must be more than 0, not {args.timeout}")
    destination = [d.strip() for d in args.destination.split(",") if d.strip()] if args.destination else None
    wants_reply = command.name not in CAST_ONLY
    try:
        replies = app.control.broadcast(
            command.name, arguments, destination=destination, reply=wants_reply, timeout=args.timeout
        )
    finally:
        app.close()
    if not wants_reply:
        print(f"{command.name} sent to {', '.join(destination) if destination else 'every node'}.")
        return 0
    if not replies:
        print(NO_REPLY, file=sys.stderr)
        return 1
    flat = flatten(replies)
    print_replies(flat, args.json, ping=command.name == "ping")
    # A node that answered with an error (unknown task, bad argument...) fails the command, as Celery's CLI does.
    return 1 if any(describe(reply)[0] == "ERROR" for reply in flat.values()) else 0
