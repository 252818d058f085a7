"""make_meta: the result record the worker stores, in Celery's format (celery-wire.md §6.2)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from celeriac.backends.base import TaskMeta
from celeriac.protocol.states import State
from celeriac.worker.request import Request


def make_meta(
    task_id: str,
    status: str,
    result: Any,
    *,
    tb: str | None = None,
    request: Request | None = None,
    extended: bool = False,
) -> TaskMeta:
    """A result record in Celery's format (celery-wire.md §6.2)."""
    ready = status in (State.SUCCESS, State.FAILURE, State.REVOKED)
    meta = TaskMeta(
        status=str(status),
        result=result,
        traceback=tb,
        children=[],
        date_done=dt.datetime.now(dt.UTC).isoformat() if ready else None,
        task_id=task_id,
    )
    if request is not None:
        if request.message.group:
            meta["group_id"] = request.message.group
        if request.message.parent_id:
            meta["parent_id"] = request.message.parent_id
        if extended:
            meta["name"] = request.message.task
            meta["args"] = list(request.message.args)
            meta["kwargs"] = dict(request.message.kwargs)
            meta["worker"] = request.hostname
            meta["retries"] = request.message.retries
            meta["queue"] = request.delivery.routing_key
    return meta
