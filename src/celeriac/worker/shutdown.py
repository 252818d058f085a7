"""How a worker shuts down, as an orchestrator (Kubernetes, systemd, ``docker stop``) can rely on it.

SIGTERM or SIGINT once: warm shutdown. The consumer stops fetching and returns reserved (unstarted) messages to
the broker at once; running tasks get up to ``worker_soft_shutdown_timeout`` seconds (None: as long as they
take); what still runs then is cancelled (`wait_running`): its ``acks_late`` message goes back to the queue (an
early-acked one was acked when it started); the worker exits 0. A second SIGTERM/SIGINT: cold shutdown
(`cold_during_warm`): running tasks are cancelled and their acks_late messages requeued now, the links close
(within `COLD_GRACE`), the worker exits. SIGQUIT: exit at once (the broker redelivers after its timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

log = logging.getLogger("celeriac.worker")

#: Seconds a cold shutdown gives the broker to take back the cancelled tasks' messages before the worker exits.
COLD_GRACE = 5.0


async def wait_running(worker: Worker) -> None:
    """Wait until no task body runs. Once a shutdown is requested (before or during the wait), wait at most
    ``worker.soft_shutdown_timeout`` seconds (None: no limit) and then cancel the bodies still running."""
    idle = asyncio.ensure_future(worker.pool.wait_idle())
    try:
        if not worker.shutting_down:  # a reconnect's wait: unbounded, unless a shutdown begins meanwhile
            asked = asyncio.ensure_future(worker.shutdown_requested())
            await asyncio.wait({idle, asked}, return_when=asyncio.FIRST_COMPLETED)
            asked.cancel()
            if idle.done():
                return
        timeout = worker.soft_shutdown_timeout
        done, _ = await asyncio.wait({idle}, timeout=timeout)
        if not done:
            log.warning(
                "Soft shutdown timeout (%gs): cancelling %d running task(s); acks_late ones go back to the queue",
                timeout,
                len(worker.state.active),
            )
            await worker.cancel_running()
    finally:
        idle.cancel()


async def cold_during_warm(worker: Worker, stopping: asyncio.Task[None]) -> None:
    """A second signal during a warm stop: cancel the running tasks, let the warm stop end at once."""
    log.warning("Cold shutdown requested: cancelling running tasks")
    worker.cold_shutdown = True
    worker.restart_reason = None
    with contextlib.suppress(RuntimeError):  # the pool may already be gone
        await worker.cancel_running()
    # With nothing left to wait for, the warm stop only returns messages and closes the links.
    done, _ = await asyncio.wait({stopping}, timeout=COLD_GRACE)
    if not done:
        log.warning("Broker links did not close within %gs; leaving anyway", COLD_GRACE)
        stopping.cancel()
        await worker.terminate()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await stopping


def install_signal_handlers(worker: Worker) -> None:
    """SIGTERM/SIGINT: warm shutdown, then cold on the second; SIGQUIT: exit now."""
    loop = asyncio.get_running_loop()
    received = 0

    def on_stop_signal(signame: str) -> None:
        nonlocal received
        received += 1
        if received == 1:
            log.warning("worker: Warm shutdown (%s)", signame)
            worker.request_shutdown()
        else:
            log.warning("worker: Cold shutdown (%s)", signame)
            worker.request_shutdown(cold=True)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop_signal, sig.name)
    loop.add_signal_handler(signal.SIGQUIT, lambda: os._exit(1))
