"""MetricsServer step (``--metrics-port``): Prometheus metrics of this worker at ``GET /metrics``.

Fed by a task listener (the same hooks that send task events), in a registry of the worker's own (never
prometheus-client's process-global one), with the process collector's CPU, memory and file descriptors. Off unless
a port is given; then it needs prometheus-client (``pip install 'celeriac[metrics]'``; without it the option is a
one-line start-up error). Names match the dashboard's (`celeriac.dashboard.metrics`):

* ``celeriac_tasks_total{name, state}``: RECEIVED, STARTED, SUCCESS, FAILURE, RETRY, REVOKED, REJECTED;
* ``celeriac_task_runtime_seconds{name}``: body run time (succeeded and failed runs);
* ``celeriac_task_queue_wait_seconds{name}``: from this worker's receipt of the message (or, for a countdown/ETA
  task, from its ETA when that is later) to the body's start; protocol 2 carries no send time;
* ``celeriac_task_redeliveries_total{name}``: messages the broker delivered again;
* ``celeriac_worker_active_tasks``, ``celeriac_worker_reserved_tasks``, ``celeriac_worker_concurrency``,
  ``celeriac_worker_up`` (1 while connected and consuming).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from celeriac.errors import ConfigurationError
from celeriac.worker.bootsteps import Step
from celeriac.worker.health import listen, readiness, serve_http
from celeriac.worker.listeners import TaskListener

if TYPE_CHECKING:
    import asyncio

    from celeriac.worker.request import Request
    from celeriac.worker.worker import Worker

log = logging.getLogger("celeriac.worker")

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, float("inf"))
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError("--metrics-port needs prometheus-client: pip install 'celeriac[metrics]'") from None
    return prometheus_client


class TaskMetrics(TaskListener):
    """The worker's metrics, counted from its task hooks (each hook is a few dict lookups)."""

    def __init__(self, worker: Worker) -> None:
        pc = _prometheus()
        self.registry = registry = pc.CollectorRegistry(auto_describe=True)
        pc.ProcessCollector(registry=registry)
        self.tasks = pc.Counter("celeriac_tasks", "Tasks by name and state", ["name", "state"], registry=registry)
        self.runtime = pc.Histogram(
            "celeriac_task_runtime_seconds", "Body run time", ["name"], buckets=BUCKETS, registry=registry
        )
        self.wait = pc.Histogram(
            "celeriac_task_queue_wait_seconds", "Receipt or ETA to start", ["name"], buckets=BUCKETS, registry=registry
        )
        self.redeliveries = pc.Counter(
            "celeriac_task_redeliveries", "Messages delivered again", ["name"], registry=registry
        )
        state = worker.state
        gauges = {
            "celeriac_worker_active_tasks": ("Task bodies running now", lambda: len(state.active)),
            "celeriac_worker_reserved_tasks": ("Tasks received, not started", lambda: len(state.reserved)),
            "celeriac_worker_concurrency": ("Pool size", lambda: worker.concurrency),
            "celeriac_worker_up": ("1 while connected and consuming", lambda: int(readiness(worker) is None)),
        }
        for name, (text, read) in gauges.items():
            pc.Gauge(name, text, registry=registry).set_function(read)
        self._render = pc.generate_latest

    def render(self) -> bytes:
        """The exposition text."""
        body: bytes = self._render(self.registry)
        return body

    def task_received(self, request: Request) -> None:
        name = request.message.task
        self.tasks.labels(name, "RECEIVED").inc()
        if request.delivery.redelivered:
            self.redeliveries.labels(name).inc()

    def task_started(self, request: Request) -> None:
        name = request.message.task
        self.tasks.labels(name, "STARTED").inc()
        started = request.time_start or time.time()
        # A countdown task waits for its ETA on purpose; only the time after the ETA is queueing.
        ready = request.time_received
        eta = request.message.eta
        if eta is not None:
            ready = max(ready, eta.timestamp())
        self.wait.labels(name).observe(max(0.0, started - ready))

    def task_succeeded(self, request: Request, result: Any, runtime: float) -> None:
        name = request.message.task
        self.tasks.labels(name, "SUCCESS").inc()
        self.runtime.labels(name).observe(runtime)

    def task_failed(self, request: Request, exc: BaseException, traceback: str) -> None:
        name = request.message.task
        self.tasks.labels(name, "FAILURE").inc()
        if request.time_start is not None:
            self.runtime.labels(name).observe(max(0.0, time.time() - request.time_start))

    def task_retried(self, request: Request, exc: BaseException) -> None:
        self.tasks.labels(request.message.task, "RETRY").inc()

    def task_revoked(self, request: Request, expired: bool, terminated: bool, signum: int | None = None) -> None:
        self.tasks.labels(request.message.task, "REVOKED").inc()

    def task_rejected(self, request: Request, requeue: bool) -> None:
        self.tasks.labels(request.message.task, "REJECTED").inc()


class MetricsServer(Step["Worker"]):
    """Serves ``/metrics`` for the worker's life (started first, so the metrics see every task)."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.metrics: TaskMetrics | None = None
        self.port: int | None = None

    def include_if(self, worker: Worker) -> bool:
        return worker.metrics_port is not None

    async def start(self, worker: Worker) -> None:
        assert worker.metrics_port is not None
        self.metrics = metrics = TaskMetrics(worker)
        worker.listeners.append(metrics)

        async def answer(method: str, path: str) -> tuple[int, str, bytes]:
            if path != "/metrics":
                return 404, "text/plain", f"no such path {path!r}; try /metrics\n".encode()
            if method not in ("GET", "HEAD"):
                return 405, "text/plain", b"use GET\n"
            return 200, CONTENT_TYPE, metrics.render()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await serve_http(reader, writer, answer)

        self._server = await listen(serve, worker.metrics_address, worker.metrics_port, "--metrics-port")
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("Metrics on http://%s:%d/metrics", worker.metrics_address, self.port)

    async def stop(self, worker: Worker) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if self.metrics in worker.listeners:
            worker.listeners.remove(self.metrics)
