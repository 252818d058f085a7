"""Old-style errbacks: Celery calls an errback in the failed task's worker, with ``(request, exc, traceback)``,
when the errback task is registered there and its function takes more than one positional argument (or ``*args``);
any other errback is sent as a task with the failed task's id (the new style, worker/canvas.py).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app.task import Task
    from celeriac.worker.request import Request

log = logging.getLogger("celeriac.worker")

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def old_style(task: Task[Any, Any]) -> bool:
    """Celery's rule: the function (without a bound task's ``self``) takes ``*args`` or more than one positional
    argument."""
    try:
        params = list(inspect.signature(task.fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if task.bind and params:
        params = params[1:]
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return True
    return sum(p.kind in _POSITIONAL for p in params) > 1


async def call_old_style(
    task: Task[Any, Any], errback: dict[str, Any], request: Request, exc: BaseException, traceback: str | None
) -> None:
    """Call ``task`` here with ``(request, exc, traceback)`` before the signature's own args, as Celery does; an
    error of the errback is logged (the failed task's outcome is stored already and stays as it is)."""
    args = (request.context(), exc, traceback, *(errback.get("args") or ()))
    kwargs = dict(errback.get("kwargs") or {})
    try:
        if task.is_async:
            await task(*args, **kwargs)
        else:  # off the loop: an errback may block (it often writes to a database)
            await asyncio.to_thread(task, *args, **kwargs)
    except Exception:
        log.exception("Errback %s of task %s[%s] raised", task.name, request.name, request.id)
