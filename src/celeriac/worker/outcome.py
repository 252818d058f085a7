"""Outcome and the ``on_stored`` seam: what a run ended with, and the hooks that run once it is stored.

The tracer's order for a final outcome (SUCCESS, FAILURE, REVOKED) is fixed: store the result, run the
``Tracer.on_stored`` hooks in list order, tell the listeners (events), then the late ack. Canvas publishes the
next link of a chain (or a chord's body) from a hook, so with ``acks_late`` a crash before the hook has run
leaves the message for redelivery and the link is never lost.

The rule for a failing hook: its exception is logged, the later hooks do not run, and the message is not
acked: with ``acks_late`` it goes back to the queue (the run and its hooks happen again: at least once), like
a result that could not be stored. An early-acked message was acked when its body started; nothing to undo.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac.protocol.states import State

if TYPE_CHECKING:
    from celeriac.worker.request import Request

log = logging.getLogger("celeriac.worker")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run ended, as stored: ``value`` is the return value (SUCCESS) or the exception."""

    state: State
    value: Any
    traceback: str | None = None


#: An ``on_stored`` hook: awaited after the outcome is stored, before the late ack.
StoredHook = Callable[["Request", Outcome], Awaitable[None]]


async def run_stored_hooks(hooks: list[StoredHook], request: Request, outcome: Outcome) -> bool:
    """Await each hook in order; False (and the error logged) at the first that raises."""
    for hook in hooks:
        try:
            await hook(request, outcome)
        except Exception:
            log.exception("on_stored hook %r failed for %s[%s]; not acking", hook, request.name, request.id)
            return False
    return True
