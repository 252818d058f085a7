"""OpenTelemetry spans for sending and running tasks, as opentelemetry-instrumentation-celery makes them, so a mixed
fleet of Celery and celeriac clients and workers gives one trace.

Off unless the setting ``tracing_enabled`` is True; then it needs opentelemetry-api (``pip install
'celeriac[otel]'``; without it the setting is a one-line error at the first send or at worker start). Spans go to
the tracer provider the application configured (``opentelemetry.trace.set_tracer_provider``).

The facts it follows (opentelemetry-instrumentation-celery 0.66): a send is a PRODUCER span ``apply_async/<task>``
whose context is injected (W3C ``traceparent``/``tracestate``) into the message's protocol-2 headers; a run is a
CONSUMER span ``run/<task>`` whose parent is extracted from those headers; attributes ``celery.action``
(``apply_async``/``run``), ``celery.task_name``, ``messaging.message.id`` and, when the run ends, ``celery.state``.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from celeriac.errors import ConfigurationError

ACTION = "celery.action"
TASK_NAME = "celery.task_name"
MESSAGE_ID = "messaging.message.id"
STATE = "celery.state"


def _api() -> tuple[Any, Any]:
    try:
        from opentelemetry import propagate, trace
    except ImportError:
        raise ConfigurationError("tracing_enabled needs OpenTelemetry: pip install 'celeriac[otel]'") from None
    return trace, propagate


def check_available() -> None:
    """Raise the one-line `ConfigurationError` now when OpenTelemetry is not installed."""
    _api()


def send_span(task_name: str, task_id: str, parent: Any, headers: MutableMapping[str, Any]) -> Any:
    """Start the PRODUCER span of one send (a child of ``parent``, a span, when given, else of the current context)
    and inject its context into ``headers``; the caller ends it once the broker has the message."""
    trace, propagate = _api()
    context = trace.set_span_in_context(parent) if parent is not None else None
    span = trace.get_tracer("celeriac").start_span(
        f"apply_async/{task_name}",
        context=context,
        kind=trace.SpanKind.PRODUCER,
        attributes={ACTION: "apply_async", TASK_NAME: task_name, MESSAGE_ID: task_id},
    )
    propagate.inject(headers, context=trace.set_span_in_context(span))
    return span


def run_span(task_name: str, task_id: str, headers: Mapping[str, Any]) -> Any:
    """Start the CONSUMER span of one run, its parent the context in the message ``headers`` (if any)."""
    trace, propagate = _api()
    carrier = {key: value for key, value in headers.items() if isinstance(value, str)}
    return trace.get_tracer("celeriac").start_span(
        f"run/{task_name}",
        context=propagate.extract(carrier),
        kind=trace.SpanKind.CONSUMER,
        attributes={ACTION: "run", TASK_NAME: task_name, MESSAGE_ID: task_id},
    )


def end_run(span: Any, state: str, error: BaseException | None = None) -> None:
    """End a run span with its final ``celery.state`` (and the error, as an exception event and ERROR status)."""
    trace, _ = _api()
    span.set_attribute(STATE, state)
    if error is not None:
        span.record_exception(error)
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()
