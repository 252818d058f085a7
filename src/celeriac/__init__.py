"""celeriac: an asyncio-native distributed task queue that speaks Celery's wire protocol.

The public API: `App` (also spelled `Celery`, so a Celery app moves by changing its import) and its ``@app.task``
decorator, ``@shared_task``, `Task`, `AsyncResult`, `State`, `current_app`, the canvas (`signature`, `chain`,
`group`, `chord`, `chunks`, `xmap`, `xstarmap`, `GroupResult`, `ResultSet`), and the error types from
`celeriac.errors` (pinned by tests/unit/test_public_api.py); signals are in `celeriac.signals`. The worker is
``celeriac.worker.Worker``; tests start one with ``celeriac.testing.start_worker``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from celeriac._version import __version__
from celeriac.app import App, AsyncResult, Task, get_current_app
from celeriac.app.shared import shared_task
from celeriac.canvas import GroupResult, ResultSet, Signature, chain, chord, chunks, group, signature, xmap, xstarmap
from celeriac.errors import (
    CanvasError,
    CeleriacError,
    ChordError,
    ConfigurationError,
    Ignore,
    MaxRetriesExceededError,
    Reject,
    RemoteError,
    Retry,
    TaskRevokedError,
    TimeoutError,
    UnknownTask,
)
from celeriac.protocol.states import State
from celeriac.queues import Exchange, Queue

Celery = App
"""Celery's name for `App`: ``from celeriac import Celery`` is all a Celery app's import needs to change."""

if TYPE_CHECKING:
    current_app: App


def __getattr__(name: str) -> object:
    # `celeriac.current_app` is evaluated on each access, so it follows the app current in this context.
    if name == "current_app":
        return get_current_app()
    raise AttributeError(f"module 'celeriac' has no attribute {name!r}")


__all__ = [
    "App",
    "AsyncResult",
    "CanvasError",
    "CeleriacError",
    "Celery",
    "ChordError",
    "ConfigurationError",
    "Exchange",
    "GroupResult",
    "Ignore",
    "MaxRetriesExceededError",
    "Queue",
    "Reject",
    "RemoteError",
    "ResultSet",
    "Retry",
    "Signature",
    "State",
    "Task",
    "TaskRevokedError",
    "TimeoutError",
    "UnknownTask",
    "__version__",
    "chain",
    "chord",
    "chunks",
    "current_app",
    "get_current_app",
    "group",
    "shared_task",
    "signature",
    "xmap",
    "xstarmap",
]
