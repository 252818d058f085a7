"""call_old_style: an old-style errback (`celeriac.canvas.errbacks.old_style` says which) is called in the failed
task's worker with ``(request, exc, traceback)``, as Celery does; other errbacks are sent (worker/canvas.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app.context import RequestContext
    from celeriac.app.task import Task

log = logging.getLogger("celeriac.worker")


async def call_old_style(
    task: Task[Any, Any],
    errback: dict[str, Any],
    request: RequestContext,
    exc: BaseException,
    traceback: str | None,
) -> None:
    """Call ``task`` here with ``(request, exc, traceback)`` before the signature's own args, as Celery does; an
    error of the errback is logged (the failed task's outcome is stored already and stays as it is)."""
    args = (request, exc, traceback, *(errback.get("args") or ()))
    kwargs = dict(errback.get("kwargs") or {})
    try:
        if task.is_async:
            await task(*args, **kwargs)
        else:  # off the loop: an errback may block (it often writes to a database)
            await asyncio.to_thread(task, *args, **kwargs)
    except Exception:
        log.exception("Errback %s of task %s[%s] raised", task.name, request.task, request.id)
