"""Django's transactions: send a task only once the database transaction that made its data commits.

``task.delay_on_commit(...)``/``task.apply_async_on_commit(...)`` (Celery 5.4's names) hand the send to
``django.db.transaction.on_commit``: sent after a successful commit (at once outside a transaction), never after a
rollback, so a worker never looks for a row that is not there yet. As in Celery they return None: the task has no
id until it is sent.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from celeriac.errors import ConfigurationError


def on_commit(send: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call ``send(*args, **kwargs)`` when the current Django transaction commits (now, outside one)."""
    try:
        from django.db import transaction  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ConfigurationError("delay_on_commit()/apply_async_on_commit() need Django (pip install django)") from None
    transaction.on_commit(functools.partial(send, *args, **kwargs))
