"""Celery's rule for an errback's call style: an errback task that is not bound (``bind=True``) and whose function
takes ``*args`` or more than one positional argument is *old-style*: called where the task failed, with
``(request, exc, traceback)``. Any other errback, a bound one whatever its arguments, is sent (or run) as a task
with the failed task's id: Celery sends bound errbacks so that they can retry."""

from __future__ import annotations

import inspect
from typing import Any

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def old_style(task: Any) -> bool:
    """Whether the errback task ``task`` (an ``@app.task``: ``fn`` and ``bind``) is called old-style."""
    if getattr(task, "bind", False):
        return False
    try:
        params = list(inspect.signature(task.fn).parameters.values())
    except (TypeError, ValueError, AttributeError):
        return False
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return True
    return sum(p.kind in _POSITIONAL for p in params) > 1
