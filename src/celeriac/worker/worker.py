"""Worker: the blueprint of worker steps, started in dependency order; signals -> warm or cold shutdown.

SIGTERM or SIGINT once: warm shutdown (stop fetching, return unstarted messages, finish running tasks, exit 0).
A second one: cold shutdown (cancel running tasks; acks_late messages go back to the queue). SIGQUIT: exit now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Sequence

from celeriac.app.app import App
from celeriac.errors import ConfigurationError
from celeriac.pools.base import Pool
from celeriac.worker.bootsteps import Blueprint, Step
from celeriac.worker.canvas import CanvasHook
from celeriac.worker.canvas_builtins import register_builtins
from celeriac.worker.consumer.consumer import Consumer
from celeriac.worker.hooks import ReadySignal, WorkerSignals
from celeriac.worker.listeners import TaskListener
from celeriac.worker.outcome import StoredHook
from celeriac.worker.policy import warn_reject_without_acks_late
from celeriac.worker.state import WorkerState
from celeriac.worker.statedb import StateDB
from celeriac.worker.steps import ConsumerStep, PoolStep, TimerStep
from celeriac.worker.timer import Timer

log = logging.getLogger("celeriac.worker")

DEFAULT_STEPS: tuple[type[Step[Worker]], ...] = (
    WorkerSignals,
    TimerStep,
    PoolStep,
    StateDB,
    ConsumerStep,
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
        shutdown_timeout: seconds a warm shutdown may take before it turns cold.
        heartbeat_interval: seconds between worker-heartbeat events (``worker_heartbeat_interval``, 2 s).
        without_mingle: skip the start-up sync with other workers (``--without-mingle``).
        without_gossip: do not follow other workers' events (``--without-gossip``).
        without_heartbeat: send no worker events (``--without-heartbeat``).
        statedb: file keeping revoked ids and the clock across restarts (``--statedb``, ``worker_state_db``).
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
        shutdown_timeout: float | None = None,
        heartbeat_interval: float | None = None,
        without_mingle: bool = False,
        without_gossip: bool = False,
        without_heartbeat: bool = False,
        statedb: str | None = None,
    ) -> None:
        conf = app.conf
        self.app = app
        self.hostname = expand_hostname(hostname or conf.worker_hostname or "celeriac@%h")
        self.pool_name = pool or conf.worker_pool
        default_concurrency = 1 if self.pool_name == "solo" else 8
        self.concurrency = int(concurrency or conf.worker_concurrency or default_concurrency)
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, not {self.concurrency}")
        self.queues = list(queues or [conf.task_default_queue])
        multiplier = conf.worker_prefetch_multiplier if prefetch_multiplier is None else prefetch_multiplier
        if multiplier < 0:
            raise ConfigurationError(f"prefetch multiplier must be 0 or more, not {multiplier}")
        self.prefetch_multiplier = multiplier
        self.prefetch_count = self.concurrency * multiplier
        self.send_events = conf.worker_send_task_events if send_events is None else send_events
        self.shutdown_timeout = conf.worker_shutdown_timeout if shutdown_timeout is None else shutdown_timeout
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
        self.listeners: list[TaskListener] = []
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
        self._signals = 0
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

    def resize(self, concurrency: int) -> None:
        """The pool now has ``concurrency`` slots (``pool_grow``/``pool_shrink``): the prefetch window follows."""
        self.concurrency = concurrency
        self.prefetch_count = concurrency * self.prefetch_multiplier

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Finalize the app and start every step; raises (after stopping what started) on failure."""
        self.app.finalize()
        self.app.set_current()
        warn_reject_without_acks_late(self.app)
        self.blueprint.apply(self)
        await self.blueprint.start(self)
        self._started.set()

    async def wait_started(self) -> None:
        """Wait until every step has started."""
        await self._started.wait()

    async def stop(self) -> None:
        """Warm shutdown (bounded by ``shutdown_timeout``; past it, cold)."""
        try:
            await asyncio.wait_for(self.blueprint.stop(self), self.shutdown_timeout)
        except TimeoutError:
            log.warning("Warm shutdown took longer than %ss: terminating", self.shutdown_timeout)
            await self.blueprint.stop(self, terminate=True)
        await self.app.aclose()

    async def terminate(self) -> None:
        """Cold shutdown: running tasks are cancelled."""
        await self.blueprint.stop(self, terminate=True)
        await self.app.aclose()

    async def wait_tasks_done(self) -> None:
        """Wait until no task body is running (new ones may not start: the consumer has stopped)."""
        await self.pool.wait_idle()

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
        if exc is not None:
            log.error("Consumer stopped: %s", exc)
            self.exitcode = 1
        self.request_shutdown()

    async def run(self, install_signal_handlers: bool = True) -> int:
        """Start, serve until shutdown is requested, stop; return the exit code."""
        if install_signal_handlers:
            self._install_signal_handlers()
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
            self.cold_shutdown = True
            await self.terminate()
        else:
            stopping = asyncio.create_task(self.stop())
            cold = asyncio.create_task(self._wait_cold())
            await asyncio.wait({stopping, cold}, return_when=asyncio.FIRST_COMPLETED)
            if not stopping.done():
                log.warning("Cold shutdown requested: cancelling running tasks")
                self.cold_shutdown = True
                await self.terminate()
                stopping.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await stopping
            cold.cancel()
        log.info("%s stopped.", self.hostname)
        return self.exitcode

    async def _wait_cold(self) -> None:
        await self._cold_requested.wait()

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()

        def on_stop_signal(signame: str) -> None:
            self._signals += 1
            if self._signals == 1:
                log.warning("worker: Warm shutdown (%s)", signame)
                self.request_shutdown()
            else:
                log.warning("worker: Cold shutdown (%s)", signame)
                self.request_shutdown(cold=True)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop_signal, sig.name)
        loop.add_signal_handler(signal.SIGQUIT, lambda: os._exit(1))
