"""retry_message: the message a retry publishes (one more retry, a new ETA, maybe new arguments)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from celeriac.errors import Retry
from celeriac.protocol.message import TaskMessage


def retry_message(message: TaskMessage, signal: Retry) -> TaskMessage:
    """``message`` again for the retry ``signal`` asks for; its ``eta`` is always set (UTC)."""
    when = signal.when
    if isinstance(when, dt.datetime):
        eta = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    else:
        eta = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=float(when or 0))
    return dataclasses.replace(
        message,
        retries=message.retries + 1,
        eta=eta,
        parent_id=message.parent_id or message.id,
        args=signal.new_args if signal.new_args is not None else message.args,
        kwargs=signal.new_kwargs if signal.new_kwargs is not None else message.kwargs,
        argsrepr=None if signal.new_args is not None else message.argsrepr,
        kwargsrepr=None if signal.new_kwargs is not None else message.kwargsrepr,
    )
