"""The optional "replies by message" capability of a result backend: the only place the sender learns about it.

A backend that sends each state to the client that sent the task (``rpc://``) needs the task message to say where
(its ``reply_to`` property), and its reply queue to exist before the task is sent. Such a backend offers
`RepliesByMessage.reply_to`; the sender checks for it with ``issubclass`` on the class
`celeriac.backends.backend_class` names, never by scheme name.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class RepliesByMessage(Protocol):
    """A result backend whose results travel as messages to the sender's own queue."""

    async def reply_to(self, task_id: str | None) -> str:
        """Get ready to receive the states of ``task_id`` (about to be sent; None: a task whose result nobody
        reads) and return the queue name the task message's ``reply_to`` must carry. Call before the send.

        Raises:
            celeriac.errors.BackendError: the reply queue cannot be declared (the send must not go out: its
                result would be lost).
        """


__all__ = ["RepliesByMessage"]
