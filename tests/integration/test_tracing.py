"""OpenTelemetry spans with ``tracing_enabled``: a celeriac send and its run are one trace (parent and child), a task
sent from inside a run is the run's child, and a real Celery 5.7 client instrumented with
opentelemetry-instrumentation-celery continues its trace on a celeriac worker. Spans are read back from the SDK's
in-memory exporter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import App
from celeriac.testing import start_worker, wait_for

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

TIMEOUT = 20


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider, set once (OpenTelemetry allows one), recording in memory."""
    memory = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    yield memory


def spans(memory: InMemorySpanExporter, name: str) -> list[Any]:
    return [span for span in memory.get_finished_spans() if span.name == name]


def make_app(redis_url: str, prefix: str, queue: str) -> App:
    app = App("traced", broker=redis_url, task_default_queue=queue, tracing_enabled=True)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    return app


async def test_a_send_and_its_run_are_one_trace(
    exporter: InMemorySpanExporter, redis_url: str, prefix: str, queue_name: str
) -> None:
    exporter.clear()
    app = make_app(redis_url, prefix, queue_name)

    @app.task(name="traced.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="traced.fan")
    async def fan() -> str:
        return (await add.adelay(1, 1)).id

    async with start_worker(app, concurrency=4):
        assert await (await add.adelay(2, 3)).aget(timeout=TIMEOUT) == 5
        child_id = await (await fan.adelay()).aget(timeout=TIMEOUT)
        await app.AsyncResult(child_id).aget(timeout=TIMEOUT)
        await wait_for(lambda: len(spans(exporter, "run/traced.add")) == 2, timeout=TIMEOUT)
    (send,) = [s for s in spans(exporter, "apply_async/traced.add") if s.parent is None]
    run = next(s for s in spans(exporter, "run/traced.add") if s.attributes["messaging.message.id"] != child_id)
    assert send.kind == trace.SpanKind.PRODUCER and run.kind == trace.SpanKind.CONSUMER
    assert run.context.trace_id == send.context.trace_id and run.parent.span_id == send.context.span_id
    assert run.attributes["celery.action"] == "run" and run.attributes["celery.state"] == "SUCCESS"
    # the task sent from inside fan's run: its send is a child of that run, its run a child of that send
    (fan_run,) = spans(exporter, "run/traced.fan")
    inner_send = next(s for s in spans(exporter, "apply_async/traced.add") if s.parent is not None)
    inner_run = next(s for s in spans(exporter, "run/traced.add") if s.attributes["messaging.message.id"] == child_id)
    assert inner_send.parent.span_id == fan_run.context.span_id
    assert inner_run.parent.span_id == inner_send.context.span_id
    assert len({fan_run.context.trace_id, inner_send.context.trace_id, inner_run.context.trace_id}) == 1
    await app.aclose()


CELERY_CLIENT = """
import sys
from celery import Celery
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

memory = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(memory))
trace.set_tracer_provider(provider)
url, prefix, queue = sys.argv[1:4]
app = Celery("client", broker=url, backend=url, set_as_current=False)
app.conf.update(broker_transport_options={"global_keyprefix": prefix},
                result_backend_transport_options={"global_keyprefix": prefix}, task_default_queue=queue)
CeleryInstrumentor().instrument()

@app.task(name="traced.add")
def add(x, y):
    raise AssertionError("runs on the celeriac worker")

assert add.delay(20, 22).get(timeout=30) == 42
(send,) = [s for s in memory.get_finished_spans() if s.name == "apply_async/traced.add"]
print("TRACE", format(send.context.trace_id, "032x"), format(send.context.span_id, "016x"))
"""


async def test_a_celery_clients_trace_continues_on_a_celeriac_worker(
    exporter: InMemorySpanExporter, redis_url: str, prefix: str, queue_name: str, tmp_path: Path
) -> None:
    pytest.importorskip("opentelemetry.instrumentation.celery")
    exporter.clear()
    app = make_app(redis_url, prefix, queue_name)

    @app.task(name="traced.add")
    def add(x: int, y: int) -> int:
        return x + y

    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(CELERY_CLIENT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY")}
    async with start_worker(app, concurrency=2):
        import asyncio

        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(script), redis_url, prefix, queue_name],
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        await wait_for(lambda: bool(spans(exporter, "run/traced.add")), timeout=TIMEOUT)
    line = next(line for line in done.stdout.splitlines() if line.startswith("TRACE "))
    trace_id, span_id = line.split()[1:]
    (run,) = spans(exporter, "run/traced.add")
    assert format(run.context.trace_id, "032x") == trace_id and format(run.parent.span_id, "016x") == span_id
    await app.aclose()


CELERY_WORKER = """
import os
from celery import Celery
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import TracerProvider

trace.set_tracer_provider(TracerProvider())
url, prefix, queue = os.environ["T_URL"], os.environ["T_PREFIX"], os.environ["T_QUEUE"]
app = Celery("tracedworker", broker=url, backend=url)
app.conf.update(broker_transport_options={"global_keyprefix": prefix},
                result_backend_transport_options={"global_keyprefix": prefix}, task_default_queue=queue,
                broker_connection_retry_on_startup=True)
CeleryInstrumentor().instrument()

@app.task(name="traced.where")
def where():
    span = trace.get_current_span()  # the instrumentation's run span, active while the body runs
    parent = getattr(span, "parent", None)
    return [format(span.get_span_context().trace_id, "032x"), format(parent.span_id, "016x") if parent else None]
"""


async def test_a_celeriac_send_continues_on_an_instrumented_celery_worker(
    exporter: InMemorySpanExporter, redis_url: str, prefix: str, queue_name: str, tmp_path: Path
) -> None:
    pytest.importorskip("opentelemetry.instrumentation.celery")
    exporter.clear()
    (tmp_path / "tracedworker.py").write_text(textwrap.dedent(CELERY_WORKER))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY")}
    env.update(T_URL=redis_url, T_PREFIX=prefix, T_QUEUE=queue_name, PYTHONPATH=str(tmp_path))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tracedworker", "worker", "-P", "solo", "-l", "warning",
         "--without-mingle", "--without-gossip", "-n", f"traced-{prefix}@itest"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    app = make_app(redis_url, prefix, queue_name)
    app.conf.result_backend = redis_url
    try:
        result = await app.asend_task("traced.where")
        trace_id, parent_span_id = await result.aget(timeout=60)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        await app.aclose()
    (send,) = spans(exporter, "apply_async/traced.where")
    assert trace_id == format(send.context.trace_id, "032x")
    assert parent_span_id == format(send.context.span_id, "016x")
