"""Remote control: the mailbox (`pidbox`), the command registry (`commands`, `builtin`) and the callers' API
(`client`, reached as ``app.control``)."""

from celeriac.control.client import Control, Inspect
from celeriac.control.pidbox import Mailbox

__all__ = ["Control", "Inspect", "Mailbox"]
