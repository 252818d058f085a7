"""Worker: the blueprint of worker steps, started in dependency order; signals -> warm or cold shutdown.

What SIGTERM guarantees (warm: reserved messages returned at once, running tasks given
``worker_soft_shutdown_timeout``, then requeued; a second signal: cold) is in `celeriac.worker.shutdown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence

from celeriac.app.app import App
from celeriac.errors import ConfigurationError
from celeriac.pools.base import Pool
from celeriac.worker import shutdown as shutdown_flow
from celeriac.worker.autoscale import Autoscaler, autoscale_bounds
from celeriac.worker.bootsteps import Blueprint, Step
from celeriac.worker.canvas import CanvasHook
from celeriac.worker.canvas_builtins import register_builtins
from celeriac.worker.consumer.consumer import Consumer
from celeriac.worker.consumer.tasks import Tasks
from celeriac.worker.django import setup_django
from celeriac.worker.health import HealthServer
from celeriac.worker.hooks import ReadySignal, WorkerSignals
from celeriac.worker.listeners import TaskListener
from celeriac.worker.metrics import MetricsServer
from celeriac.worker.outcome import StoredHook
from celeriac.worker.policy import warn_reject_without_acks_late
from celeriac.worker.reload import Autoreloader
from celeriac.worker.state import WorkerState
from celeriac.worker.statedb import StateDB
from celeriac.worker.steps import ConsumerStep, PoolStep, TimerStep
from celeriac.worker.timer import Timer
from celeriac.worker.tracing import TaskTracing

log = logging.getLogger("celeriac.worker")

# The health server starts first (a probe is answered while the broker is still being reached) and stops last;
# the autoscaler and reloader come after the consumer, so they stop before it does.
DEFAULT_STEPS: tuple[type[Step[Worker]], ...] = (
    HealthServer,
    MetricsServer,
    WorkerSignals,
    TimerStep,
    PoolStep,
    StateDB,
    ConsumerStep,
    Autoscaler,
    Autoreloader,
    ReadySignal,
)


def expand_hostname(template: str) -> str:
    """Expand ``%h`` (host name), ``%n`` (short name), ``%d`` (domain) and ``%%`` in a node name."""
    fqdn = socket.getfqdn() if "%d" in template else ""
    host = socket.gethostname()
    _, _, domain = (fqdn or host).partition(".")
    expanded = template.replace("%%", "\0").replace("%h", host).replace("%n", host.split(".")[0])
    expanded = expanded.replace("%d", domain).replace("\0", "%")
    return expanded if "@" in expanded else f"{expanded}@{host}"


class Worker:
    """A worker for ``app``: consumes ``queues`` and runs tasks in a pool.

    Args:
        app: the application whose tasks run here.
        hostname: node name (``-n``); ``%h`` expands; default ``celeriac@<host>``.
        concurrency: pool size (``-c``); default ``worker_concurrency`` or 8 (1 for solo).
        pool: ``asyncio``, ``threads`` or ``solo`` (``-P``).
        queues: queue names (``-Q``); default ``task_default_queue``.
        prefetch_multiplier: prefetch = concurrency x this (0 = unlimited).
        send_events: send task events (``-E``).
        soft_shutdown_timeout: seconds a warm shutdown waits for running tasks (``worker_soft_shutdown_timeout``;
            None: as long as they take); then they are cancelled and their acks_late messages requeued.
        heartbeat_interval: seconds between worker-heartbeat events (``worker_heartbeat_interval``, 2 s).
        without_mingle: skip the start-up sync with other workers (``--without-mingle``).
        without_gossip: do not follow other workers' events (``--without-gossip``).
        without_heartbeat: send no worker events (``--without-heartbeat``).
        statedb: file keeping revoked ids and the clock across restarts (``--statedb``, ``worker_state_db``).
        autoscale: ``"MAX,MIN"`` or ``(max, min)``: the pool follows the work (``--autoscale``, ``worker_autoscaler``).
        health_port: serve ``/healthz`` and ``/readyz`` on this port (``--health-port``, ``worker_health_port``).
        metrics_port / metrics_address: serve Prometheus ``/metrics`` there (``--metrics-port``,
            ``worker_metrics_port``; worker/metrics.py).
        health_address: the health server's address (``--health-address``, ``worker_health_address``: loopback).
        reload: restart the worker when a source file of the app changes (``--reload``; development only).
    """

    def __init__(
        self,
        app: App,
        *,
        hostname: str | None = None,
        concurrency: int | None = None,
        pool: str | None = None,
        queues: Sequence[str] | None = None,
        prefetch_multiplier: int | None = None,
        send_events: bool | None = None,
        soft_shutdown_timeout: float | None = None,
        heartbeat_interval: float | None = None,
        without_mingle: bool = False,
        without_gossip: bool = False,
        without_heartbeat: bool = False,
        statedb: str | None = None,
        autoscale: str | tuple[int, int] | None = None,
        health_port: int | None = None,
        metrics_port: int | None = None,
        metrics_address: str | None = None,
        health_address: str | None = None,
        reload: bool = False,
    ) -> None:
        conf = app.conf
        self.app = app
        self.hostname = expand_hostname(hostname or conf.worker_hostname or "celeriac@%h")
        self.pool_name = pool or conf.worker_pool
        default_concurrency = (
            1 if self.pool_name == "solo" else (os.cpu_count() or 1) if self.pool_name == "prefork" else 8
        )
        self.concurrency = int(concurrency or conf.worker_concurrency or default_concurrency)
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, not {self.concurrency}")
        #: ``(max, min)`` under autoscale: the pool starts at min (at least one slot), the prefetch window is max's.
        self.autoscale = autoscale_bounds(autoscale, conf.worker_autoscaler)
        if self.autoscale is not None:
            if self.pool_name == "solo":
                raise ConfigurationError("--autoscale: the solo pool has one slot; use -P threads or asyncio")
            if concurrency or conf.worker_concurrency:  # as in Celery, the autoscaler sizes the pool
                low, high = self.autoscale[1], self.autoscale[0]
                log.warning(
                    "Concurrency %s is not used: autoscale sizes the pool (%d to %d)", self.concurrency, low, high
                )
            self.concurrency = max(self.autoscale[1], 1)
        self.autoscale_keepalive = float(conf.worker_autoscaler_keepalive)
        if self.autoscale_keepalive <= 0:
            raise ConfigurationError(f"worker_autoscaler_keepalive must be more than 0, not {self.autoscale_keepalive}")
        # -Q, else every queue of task_queues, else the default queue (as Celery's worker)
        self.queues = list(queues or app.declared_queues() or [conf.task_default_queue])
        multiplier = conf.worker_prefetch_multiplier if prefetch_multiplier is None else prefetch_multiplier
        if multiplier < 0:
            raise ConfigurationError(f"prefetch multiplier must be 0 or more, not {multiplier}")
        self.prefetch_multiplier = multiplier
        self.prefetch_count = self._window()
        self.send_events = conf.worker_send_task_events if send_events is None else send_events
        soft = conf.worker_soft_shutdown_timeout if soft_shutdown_timeout is None else soft_shutdown_timeout
        if soft is not None and soft < 0:
            raise ConfigurationError(f"worker_soft_shutdown_timeout must be 0 or more, not {soft}")
        self.soft_shutdown_timeout = soft
        self.health_port = conf.worker_health_port if health_port is None else health_port
        if self.health_port is not None and not 0 <= self.health_port <= 65535:
            raise ConfigurationError(f"--health-port must be a TCP port (0-65535), not {self.health_port}")
        self.health_address = health_address or conf.worker_health_address
        self.metrics_port = conf.worker_metrics_port if metrics_port is None else metrics_port
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigurationError(f"--metrics-port must be a TCP port (0-65535), not {self.metrics_port}")
        self.metrics_address = metrics_address or conf.worker_metrics_address
        self.reload = reload
        interval = conf.worker_heartbeat_interval if heartbeat_interval is None else heartbeat_interval
        if interval <= 0:
            raise ConfigurationError(f"heartbeat interval must be more than 0, not {interval}")
        self.heartbeat_interval = float(interval)
        self.without_mingle = without_mingle
        self.without_gossip = without_gossip
        self.without_heartbeat = without_heartbeat
        self.statedb: str | None = statedb or conf.worker_state_db
        self.started_at = time.monotonic()
        self.state = WorkerState()
        self.listeners: list[TaskListener] = [TaskTracing()] if conf.tracing_enabled else []
        #: The tracer's ``on_stored`` hooks (worker/outcome.py): kept here so they outlive a reconnect.
        self.on_stored: list[StoredHook] = [CanvasHook(app)]  # canvas: callbacks, chain steps, chord joins
        register_builtins(app)  # celery.map / celery.starmap
        self.pid = os.getpid()
        steps: list[type[Step[Worker]]] = [*DEFAULT_STEPS, *app.steps["worker"]]
        self.blueprint: Blueprint[Worker] = Blueprint("worker", steps)
        self._started = asyncio.Event()
        self._shutdown = asyncio.Event()
        self._cold = False
        self._cold_requested = asyncio.Event()
        #: True once a cold shutdown ran: threads may still be running task bodies that cannot be stopped.
        self.cold_shutdown = False
        #: True when running tasks were cancelled (cold shutdown, or the soft shutdown timeout ran out).
        self.cut_short = False
        #: Why the worker should start again in a fresh process (the reloader's changed files), or None.
        self.restart_reason: str | None = None
        self.exitcode = 0

    def __repr__(self) -> str:
        return f"<Worker {self.hostname}>"

    # -- collaborators ---------------------------------------------------------------------------
    @property
    def pool(self) -> Pool:
        """The running pool."""
        pool = self.blueprint.get(PoolStep).pool
        if pool is None:
            raise RuntimeError("the pool is not started")
        return pool

    @property
    def timer(self) -> Timer:
        """The ETA timer."""
        return self.blueprint.get(TimerStep).timer

    @property
    def consumer(self) -> Consumer:
        """The running consumer (its steps: ``worker.consumer.blueprint.get(Gossip)``)."""
        consumer = self.blueprint.get(ConsumerStep).consumer
        if consumer is None:
            raise RuntimeError("the consumer is not started")
        return consumer

    @property
    def autoscaler(self) -> Autoscaler | None:
        """The Autoscaler step when the worker autoscales."""
        return self.blueprint.get(Autoscaler) if self.blueprint.has(Autoscaler) else None

    def _window(self) -> int:
        slots = self.autoscale[0] if self.autoscale is not None else self.concurrency
        return slots * self.prefetch_multiplier

    def resize(self, concurrency: int) -> None:
        """The pool now has ``concurrency`` slots (``pool_grow``/``pool_shrink``, the autoscaler).

        The prefetch window follows the pool, or under autoscale its maximum (so that waiting work is seen).
        """
        self.concurrency = concurrency
        self._refresh_prefetch()

    def set_autoscale(self, max_concurrency: int, min_concurrency: int) -> None:
        """New autoscale bounds (the ``autoscale`` command): the prefetch window follows the maximum."""
        self.autoscale = (max_concurrency, min_concurrency)
        self._refresh_prefetch()

    def _refresh_prefetch(self) -> None:
        self.prefetch_count = self._window()
        step = self.blueprint.get(ConsumerStep) if self.blueprint.has(ConsumerStep) else None
        consumer = step.consumer if step is not None else None
        if consumer is not None and consumer.blueprint.has(Tasks):
            strategy = consumer.blueprint.get(Tasks).strategy
            if strategy is not None:
                strategy.resize(self.prefetch_count)

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Finalize the app and start every step; raises (after stopping what started) on failure."""
        setup_django()  # before the tasks are loaded, so their modules may use Django's registry
        self.app.finalize()
        self.app.set_current()
        warn_reject_without_acks_late(self.app)
        self.blueprint.apply(self)
        await self.blueprint.start(self)
        self._started.set()

    @property
    def started(self) -> bool:
        """Whether every step has started (the consumer was ready at least once)."""
        return self._started.is_set()

    @property
    def shutting_down(self) -> bool:
        """Whether a shutdown was requested."""
        return self._shutdown.is_set()

    async def shutdown_requested(self) -> None:
        """Wait until a shutdown is requested."""
        await self._shutdown.wait()

    async def wait_started(self) -> None:
        """Wait until every step has started."""
        await self._started.wait()

    async def stop(self) -> None:
        """Warm shutdown: the consumer returns unstarted messages and waits for running tasks (`wait_tasks_done`)."""
        await self.blueprint.stop(self)
        await self.app.aclose()

    async def terminate(self) -> None:
        """Cold shutdown: running tasks are cancelled."""
        await self.blueprint.stop(self, terminate=True)
        await self.app.aclose()

    async def wait_tasks_done(self) -> None:
        """Wait until no task body is running (new ones may not start: the consumer has stopped fetching).

        Once a shutdown is requested it lasts at most ``soft_shutdown_timeout`` seconds (`shutdown.wait_running`).
        """
        await shutdown_flow.wait_running(self)

    async def cancel_running(self) -> None:
        """Cancel every running task now (acks_late messages are requeued by the tracer as they end)."""
        self.cut_short = True
        await self.pool.terminate()

    def request_restart(self, reason: str) -> None:
        """Shut down warmly, then start again in a fresh process (the CLI re-executes itself)."""
        self.restart_reason = reason
        self.request_shutdown()

    def request_shutdown(self, cold: bool = False) -> None:
        """Ask `run` to shut down (warm, or cold)."""
        self._cold = self._cold or cold
        if cold:
            self._cold_requested.set()
        self._shutdown.set()

    def consumer_finished(self, task: asyncio.Task[None]) -> None:
        """The consumer's task ended on its own: a fatal connection error; shut the worker down."""
        if task.cancelled() or self._shutdown.is_set():
            return
        exc = task.exception()
        if exc is None and not self._started.is_set():
            # A clean end before the worker started is the blueprint stopping the consumer because a later step
            # failed to start: `start` raises that step's error, which must not be swallowed as a shutdown.
            return
        if exc is not None:
            log.error("Consumer stopped: %s", exc)
            self.exitcode = 1
        self.request_shutdown()

    async def run(self, install_signal_handlers: bool = True) -> int:
        """Start, serve until shutdown is requested, stop; return the exit code."""
        if install_signal_handlers:
            shutdown_flow.install_signal_handlers(self)
        starting = asyncio.create_task(self.start())
        shutdown = asyncio.create_task(self._shutdown.wait())
        await asyncio.wait({starting, shutdown}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # asked to stop while still connecting: give up starting
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            await self.app.aclose()
            log.info("%s stopped before it was ready.", self.hostname)
            return self.exitcode
        shutdown.cancel()
        starting.result()  # a start-up error propagates
        await self._shutdown.wait()
        if self._cold:
            self.cold_shutdown = self.cut_short = True
            await self.terminate()
        else:
            stopping = asyncio.create_task(self.stop())
            cold = asyncio.create_task(self._wait_cold())
            await asyncio.wait({stopping, cold}, return_when=asyncio.FIRST_COMPLETED)
            if not stopping.done():
                await shutdown_flow.cold_during_warm(self, stopping)
            cold.cancel()
        log.info("%s stopped.", self.hostname)
        return self.exitcode

    async def _wait_cold(self) -> None:
        await self._cold_requested.wait()
