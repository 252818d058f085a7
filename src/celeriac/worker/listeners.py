"""TaskListener: the hooks the worker calls as a request moves along (the Events step sends events from them).

Every hook is a plain, non-blocking method; the default does nothing, so a listener overrides only what it
needs. Hooks must not raise (the tracer logs and ignores it if one does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.worker.request import Request


class TaskListener:
    """Base class of worker task hooks."""

    def task_received(self, request: Request) -> None:
        """The message was accepted (before any ETA wait)."""

    def task_started(self, request: Request) -> None:
        """The body is about to run."""

    def task_succeeded(self, request: Request, result: Any, runtime: float) -> None:
        """The body returned ``result`` after ``runtime`` seconds and the result is stored."""

    def task_failed(self, request: Request, exc: BaseException, traceback: str) -> None:
        """The body raised ``exc`` (or the message could not be run)."""

    def task_retried(self, request: Request, exc: BaseException) -> None:
        """A retry message was sent."""

    def task_revoked(self, request: Request, expired: bool, terminated: bool, signum: int | None = None) -> None:
        """The request was revoked, expired or terminated (by signal ``signum``) and will not run (on)."""

    def task_rejected(self, request: Request, requeue: bool) -> None:
        """The body raised Reject."""
