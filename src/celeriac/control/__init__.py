"""Remote control: the mailbox (`pidbox`), the commands a worker answers (`commands`, `builtin`) and the shapes of
their replies (`replies`). The callers' API (``app.control``) lives in `celeriac.app.control`."""

from celeriac.control.arguments import Arg
from celeriac.control.builtin import BUILTINS, with_builtins
from celeriac.control.commands import Command, CommandRegistry, Kind, command
from celeriac.control.pidbox import Mailbox

__all__ = ["BUILTINS", "Arg", "Command", "CommandRegistry", "Kind", "Mailbox", "command", "with_builtins"]
