"""TaskTracing: the worker's OpenTelemetry run spans (``tracing_enabled``; `celeriac._otel` has the facts).

A span starts as the body starts, parented by the trace context the sender put in the message headers, and ends
with the outcome. It is kept on the request (``otel_span``), so a task the body sends is a child of its run: the
send path finds the running request through the request context, across the threads pool and the portal too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celeriac import _otel
from celeriac.protocol.states import State
from celeriac.worker.listeners import TaskListener

if TYPE_CHECKING:
    from celeriac.worker.request import Request


class TaskTracing(TaskListener):
    """Starts and ends each run's span."""

    def __init__(self) -> None:
        _otel.check_available()  # a missing library stops the worker's start in one line

    def task_started(self, request: Request) -> None:
        request.otel_span = _otel.run_span(request.message.task, request.id, request.message.extra_headers)

    def _end(self, request: Request, state: str, error: BaseException | None = None) -> None:
        span, request.otel_span = request.otel_span, None
        if span is not None:
            _otel.end_run(span, state, error)

    def task_succeeded(self, request: Request, result: Any, runtime: float) -> None:
        self._end(request, State.SUCCESS)

    def task_failed(self, request: Request, exc: BaseException, traceback: str) -> None:
        self._end(request, State.FAILURE, exc)

    def task_retried(self, request: Request, exc: BaseException) -> None:
        self._end(request, State.RETRY)

    def task_revoked(self, request: Request, expired: bool, terminated: bool, signum: int | None = None) -> None:
        self._end(request, State.REVOKED)

    def task_rejected(self, request: Request, requeue: bool) -> None:
        self._end(request, State.REJECTED)
