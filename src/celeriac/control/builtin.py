"""The built-in remote-control commands, all listed in `BUILTINS`; `with_builtins` makes the registry a worker
answers from: a new one each time, so commands one app adds never reach another."""

from __future__ import annotations

from typing import Final

from celeriac.control.commands import Command, CommandRegistry
from celeriac.control.control_commands import COMMANDS as CONTROL_COMMANDS
from celeriac.control.inspect_commands import COMMANDS as INSPECT_COMMANDS

BUILTINS: Final[tuple[Command, ...]] = (*INSPECT_COMMANDS, *CONTROL_COMMANDS)


def with_builtins() -> CommandRegistry:
    """A new registry holding every built-in command (add an app's own commands to it with ``register``)."""
    return CommandRegistry(BUILTINS)
