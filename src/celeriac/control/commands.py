"""The registry of remote-control commands: each has a name, typed arguments and a documented reply shape.

A handler is ``async def handler(node, **arguments) -> reply``; `CommandRegistry.dispatch` runs the one a
request names with the request's ``arguments`` coerced to the declared types (undeclared ones are ignored,
as Celery's handlers ignore extra keywords), and turns trouble into Celery's error replies: an unknown
command gives ``{"error": "KeyError('x')"}``, a handler exception ``{"error": repr(exc)}`` (celery-wire.md
§5.2). The same declarations convert command-line words (``celeriac control rate_limit tasks.add 10/m``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from celeriac.control.arguments import Arg, shown

log = logging.getLogger("celeriac.control")

Handler = Callable[..., Awaitable[Any]]


class Kind(StrEnum):
    """Inspect commands only read; control commands change something."""

    INSPECT = "inspect"
    CONTROL = "control"


class NoReply:
    """The type of `NO_REPLY`: a handler result meaning "send no reply" (``shutdown``)."""

    def __repr__(self) -> str:
        return "NO_REPLY"


NO_REPLY: Final = NoReply()


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command.

    Attributes:
        name: the ``method`` of the request.
        handler: ``async def handler(node, **arguments)``.
        kind: inspect or control.
        args: the declared arguments, in command-line order.
        aliases: other method names for it (``dump_active``...).
        reply: the reply shape, for help texts and docs.
        visible: False for commands only workers send (``hello``).
    """

    name: str
    handler: Handler
    kind: Kind
    args: tuple[Arg, ...] = ()
    aliases: tuple[str, ...] = ()
    reply: str = ""
    visible: bool = True

    def coerce(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The declared ``arguments``, coerced; others dropped, and a None value is taken as not given (the
        handler's default applies), as Celery's clients mean it. Raises ValueError/TypeError on a bad value."""
        declared = {arg.name: arg for arg in self.args}
        coerced: dict[str, Any] = {}
        for name, value in arguments.items():
            arg = declared.get(name)
            if arg is None:
                log.debug("control %s: ignoring undeclared argument %r", self.name, name)
                continue
            if value is None:
                continue  # Celery's clients send None for "not given" (signal=None...): the handler's default
            coerced[name] = arg.coerce(value)
        return coerced

    def from_words(self, words: Sequence[str]) -> dict[str, Any]:
        """Arguments from command-line words, in declaration order. Raises ValueError naming the problem."""
        arguments: dict[str, Any] = {}
        rest = list(words)
        for arg in self.args:
            if not rest:
                break
            taken: Any = rest if arg.variadic else rest[0]
            rest = [] if arg.variadic else rest[1:]
            try:
                arguments[arg.name] = arg.coerce(taken)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{self.name}: bad value {taken!r} for {arg.name}: {exc}") from None
        if rest:
            raise ValueError(f"{self.name}: too many arguments: {' '.join(rest)}")
        return arguments


def command(
    kind: Kind,
    *args: Arg,
    name: str | None = None,
    aliases: Sequence[str] = (),
    reply: str = "",
    visible: bool = True,
) -> Callable[[Handler], Command]:
    """Decorator: declare ``async def <name>(node, **arguments)`` as a `Command` (add it to a registry with
    `CommandRegistry.add`). ``name`` defaults to the function's name without a trailing ``_``."""

    def declare(handler: Handler) -> Command:
        return Command(name or handler.__name__.rstrip("_"), handler, kind, tuple(args), tuple(aliases), reply, visible)

    return declare


class CommandRegistry:
    """Command name (or alias) -> `Command`: the commands one worker answers (``builtin.with_builtins()`` gives
    a new one holding the built-ins; each worker owns its own, none is shared through a module global)."""

    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: dict[str, Command] = {}
        self._aliases: dict[str, str] = {}
        for each in commands:
            self.add(each)

    def add(self, command: Command) -> None:
        """Register ``command`` (replacing one of the same name)."""
        self._commands[command.name] = command
        for alias in command.aliases:
            self._aliases[alias] = command.name

    def register(
        self,
        kind: Kind,
        *args: Arg,
        name: str | None = None,
        aliases: Sequence[str] = (),
        reply: str = "",
        visible: bool = True,
    ) -> Callable[[Handler], Handler]:
        """Decorator: register ``async def <name>(node, **arguments)`` as a command; returns the function."""

        def add(handler: Handler) -> Handler:
            self.add(command(kind, *args, name=name, aliases=aliases, reply=reply, visible=visible)(handler))
            return handler

        return add

    def get(self, name: str) -> Command | None:
        """The command called ``name`` (or with that alias), or None."""
        return self._commands.get(self._aliases.get(name, name))

    def __iter__(self) -> Iterator[Command]:
        return iter(sorted(self._commands.values(), key=lambda c: c.name))

    def names(self, kind: Kind | None = None, visible_only: bool = True) -> list[str]:
        """The command names (of one kind), sorted."""
        return [c.name for c in self if (kind is None or c.kind is kind) and (c.visible or not visible_only)]

    async def dispatch(self, node: Any, method: str, arguments: Mapping[str, Any]) -> Any:
        """Run ``method`` for ``node``; returns the reply value (an error dict on any failure, or NO_REPLY)."""
        command = self.get(method)
        if command is None:
            return {"error": repr(KeyError(method))}
        try:
            return await command.handler(node, **command.coerce(arguments))
        except Exception as exc:
            log.warning("control command %s failed: %s", method, shown(exc, 500))
            return {"error": repr(exc)}
