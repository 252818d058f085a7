"""Remote control: the mailbox (`pidbox`), the command registry (`commands`, `builtin`) and the callers' API
(`client`, reached as ``app.control``, and `inspect`)."""

from celeriac.control.client import Control
from celeriac.control.inspect import Inspect
from celeriac.control.pidbox import Mailbox

__all__ = ["Control", "Inspect", "Mailbox"]
