"""The whole celeriac exception tree.

::

    CeleriacError
    ├── ConfigurationError            a bad setting, option or URL (one line, names it)
    │   └── UnknownSetting
    ├── ProtocolError                 bytes on the wire we cannot use
    │   ├── DecodeError               undecodable body, bad JSON type marker, bad shape
    │   └── ContentDisallowed         content type not in accept_content
    ├── TransportError                broker trouble
    │   ├── ConnectionLost            the link broke (also a builtin ConnectionError)
    │   └── TransportClosed           we closed it and then used it
    ├── BackendError                  result-store trouble
    ├── UnknownTask                   a message named an unregistered task (NotRegistered on the wire)
    ├── TimeoutError                  waiting for a result or reply took too long (also builtin TimeoutError)
    ├── TaskRevokedError              the task was revoked / expired / terminated
    ├── WorkerLostError               the process running a task died
    ├── TimeLimitExceeded             a hard time limit killed the task
    ├── SoftTimeLimitExceeded         raised inside the task body at the soft limit
    ├── MaxRetriesExceededError       retry() past max_retries
    ├── RemoteError                   a task's exception whose type could not be rebuilt here
    ├── ChordError                    a chord's header task failed (the body never runs)
    ├── CanvasError                   a canvas that cannot be sent (also a builtin ValueError)
    └── TaskSignal                    not failures: signals from a task body
        ├── Retry
        ├── Reject
        └── Ignore
"""

from __future__ import annotations

import builtins
import datetime as _dt
from typing import Any


class CeleriacError(Exception):
    """Base of every error celeriac raises on purpose."""


class ConfigurationError(CeleriacError):
    """A setting, command-line option or URL has a value celeriac cannot use."""


class UnknownSetting(ConfigurationError, KeyError):
    """A setting name that celeriac does not know (usually a typo)."""

    def __init__(self, name: str, suggestion: str | None = None) -> None:
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"unknown setting {name!r}{hint}")
        self.name = name
        self.suggestion = suggestion

    def __str__(self) -> str:  # KeyError would quote the whole message again
        return str(self.args[0])


class ProtocolError(CeleriacError):
    """Bytes from the broker that cannot be turned into a task, event or command."""


class DecodeError(ProtocolError):
    """A body that cannot be decoded, or decodes to the wrong shape; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ContentDisallowed(ProtocolError):
    """A message whose content type is not in ``accept_content``."""

    def __init__(self, content_type: str) -> None:
        super().__init__(f"content type {content_type!r} is not accepted (see accept_content)")
        self.content_type = content_type


class TransportError(CeleriacError):
    """The broker failed us."""


class ConnectionLost(TransportError, ConnectionError):
    """The connection to the broker broke; reconnecting may help."""


class TransportClosed(TransportError):
    """The transport was used after it was closed by us."""


class BackendError(CeleriacError):
    """The result backend failed us."""


class UnknownTask(CeleriacError):
    """A message named a task this worker has not registered (Celery's NotRegistered)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown task {name!r}")
        self.name = name


class TimeoutError(CeleriacError, builtins.TimeoutError):
    """Waiting for a result or a reply took longer than the timeout."""


class TaskRevokedError(CeleriacError):
    """The task was revoked (``reason`` is 'revoked', 'expired' or 'terminated')."""


class WorkerLostError(CeleriacError):
    """The process running the task died before it finished."""


class TimeLimitExceeded(CeleriacError):
    """The task ran past its hard time limit and was stopped."""


class SoftTimeLimitExceeded(CeleriacError):
    """Raised inside a task body when its soft time limit passes."""


class MaxRetriesExceededError(CeleriacError):
    """``retry()`` was called after the task's ``max_retries`` were used up."""


class RemoteError(CeleriacError):
    """A task failed with an exception whose type cannot be imported here.

    ``exc_type`` and ``exc_module`` name the original type; ``args`` are its arguments.
    """

    def __init__(self, exc_type: str, exc_module: str | None, args: list[Any]) -> None:
        text = ", ".join(repr(a) for a in args) if len(args) != 1 else str(args[0])
        super().__init__(f"{exc_type}: {text}")
        self.exc_type = exc_type
        self.exc_module = exc_module
        self.exc_args = args


class ChordError(CeleriacError):
    """A chord's header task failed or the chord could not be joined: its body fails with this, never runs."""


class CanvasError(CeleriacError, ValueError):
    """A canvas (chain, group, chord ...) that cannot be sent as built; the message says why."""


class TaskSignal(CeleriacError):
    """Base of the signals a task body raises to steer the worker; not failures."""


class Retry(TaskSignal):
    """The task asked to run again later (raised by ``Task.retry``)."""

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | _dt.datetime | None = None,
    ) -> None:
        super().__init__(message or (f"Retry in {when}s" if when is not None else "Retry"))
        self.exc = exc
        self.when = when
        # What the re-sent message carries instead of the original arguments (None: the same).
        self.new_args: tuple[Any, ...] | None = None
        self.new_kwargs: dict[str, Any] | None = None
        self.max_retries: int | None = None


class Reject(TaskSignal):
    """The task refuses its message; ``requeue`` puts it back on the queue."""

    def __init__(self, reason: str | None = None, requeue: bool = False) -> None:
        super().__init__(reason, requeue)
        self.reason = reason
        self.requeue = requeue


class Ignore(TaskSignal):
    """The task wants no result stored and no further handling; the message is acked."""


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
