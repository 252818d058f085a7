"""Celery's module name for the exception tree: ``from celeriac.exceptions import SoftTimeLimitExceeded``.

Every class is the one defined in `celeriac.errors` (re-exported, not copied), so ``except`` clauses written
against either module catch the same errors. ``NotRegistered`` is Celery's name for `UnknownTask`.
"""

from __future__ import annotations

from celeriac.errors import (
    BackendError,
    CanvasError,
    CeleriacError,
    ChordError,
    ConfigurationError,
    ConnectionLost,
    ContentDisallowed,
    DecodeError,
    Ignore,
    MaxRetriesExceededError,
    ProtocolError,
    Reject,
    RemoteError,
    Retry,
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TaskSignal,
    TimeLimitExceeded,
    TimeoutError,
    TransportClosed,
    TransportError,
    UnknownSetting,
    UnknownTask,
    WorkerLostError,
)

NotRegistered = UnknownTask

__all__ = [
    "BackendError",
    "CanvasError",
    "CeleriacError",
    "ChordError",
    "ConfigurationError",
    "ConnectionLost",
    "ContentDisallowed",
    "DecodeError",
    "Ignore",
    "MaxRetriesExceededError",
    "NotRegistered",
    "ProtocolError",
    "Reject",
    "RemoteError",
    "Retry",
    "SoftTimeLimitExceeded",
    "TaskRevokedError",
    "TaskSignal",
    "TimeLimitExceeded",
    "TimeoutError",
    "TransportClosed",
    "TransportError",
    "UnknownSetting",
    "UnknownTask",
    "WorkerLostError",
]
