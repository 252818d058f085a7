"""Call: the picklable description of one task body to run, the whole interface between the worker and a pool.

The worker builds a `Call` per request and hands it to ``pool.execute(call)``; the pool looks the task up by
name in the registry it was given and sets up ``self.request`` itself, where the body runs. Nothing in a Call
is a live object of the worker (no Task, no delivery handle, no ContextVar), so a future prefork child can
receive one over a pipe and do exactly what the in-process pools do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celeriac.app.context import RequestContext
from celeriac.app.current import ContextSource


# Not frozen: one Call is built per task, and a frozen dataclass's __init__ (object.__setattr__ per field) costs
# ~1.1 us more than a plain one built positionally (0.2 us; timeit, 8 fields), ~2 % of a no-op task's worker CPU.
# Nothing assigns to a Call after the tracer built it.
@dataclass(slots=True)
class Call:
    """One body to run: which task, with what, what it may know about itself, and how long it may take.

    Attributes:
        task: the registered task name (the message's ``task`` header).
        args: positional arguments.
        kwargs: keyword arguments.
        request: what the body sees as ``self.request``: a `RequestContext`, or, inside the worker process,
            any source of one (the worker's Request builds it only when a body asks). Pickling always sends
            the plain `RequestContext` (see `__reduce__`).
        time_limit: hard time limit in seconds (None: no limit).
        soft_time_limit: soft time limit in seconds, from the message (carried for prefork; not enforced in
            process, as before).
        acks_late: the message is acked after the outcome is stored.
        reject_on_worker_lost: with ``acks_late``, a child that dies mid-body gets its message requeued
            instead of failed (prefork acts on it; in process "worker lost" is the whole worker dying, and the
            broker redelivers an unacked message anyway).
    """

    task: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    request: ContextSource
    time_limit: float | None = None
    soft_time_limit: float | None = None
    acks_late: bool = False
    reject_on_worker_lost: bool = False

    @property
    def context(self) -> RequestContext:
        """The request context as plain data (built now if the source is lazy)."""
        return self.request.context()

    def __reduce__(self) -> tuple[Any, ...]:
        # Across a process boundary only plain data travels: the lazy source becomes its RequestContext.
        return (
            Call,
            (
                self.task,
                self.args,
                dict(self.kwargs),
                self.context,
                self.time_limit,
                self.soft_time_limit,
                self.acks_late,
                self.reject_on_worker_lost,
            ),
        )
