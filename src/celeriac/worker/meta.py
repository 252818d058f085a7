"""make_meta: the result record the worker stores, in Celery's format (celery-wire.md §6.2); reply_of: where to."""

from __future__ import annotations

import datetime as dt
from typing import Any

from celeriac.backends.base import ReplyTo, TaskMeta
from celeriac.protocol.message import TaskMessage
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
        # Celery's result tuples: ((id, parent tuple), None) for a plain result; a parent is never set here.
        meta["children"] = [[[child, None], None] for child in request.children]
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


def reply_of(message: TaskMessage) -> ReplyTo | None:
    """Where ``message`` asked its states to be sent (``reply_to``, ``correlation_id``), for ``rpc://``."""
    if not message.reply_to:
        return None
    return ReplyTo(message.reply_to, message.correlation_id or message.id)
