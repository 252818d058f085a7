"""Remote control: the mailbox (`pidbox`), the command registry (`commands`, `builtin`) and the callers' API
(`client`, reached as ``app.control``, and `inspect`)."""

from celeriac.app.control import Control
from celeriac.app.inspection import Inspect
from celeriac.control.pidbox import Mailbox

__all__ = ["Control", "Inspect", "Mailbox"]
