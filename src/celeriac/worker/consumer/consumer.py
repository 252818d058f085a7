"""Consumer: runs its blueprint of connection-bound steps, and reconnects with backoff when the broker goes away.

One loop: start the steps, run until stopped or `connection_lost`, stop the steps, back off, repeat. Messages
that were delivered but not acked on a lost connection are redelivered by the broker, never duplicated here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING

from celeriac.errors import ConnectionLost, TransportError
from celeriac.worker.bootsteps import Blueprint, Step
from celeriac.worker.consumer.connection import Connection
from celeriac.worker.consumer.control import RemoteControl
from celeriac.worker.consumer.events import Events
from celeriac.worker.consumer.gossip import Gossip
from celeriac.worker.consumer.heart import Heart
from celeriac.worker.consumer.loop import Loop
from celeriac.worker.consumer.mingle import Mingle
from celeriac.worker.consumer.tasks import Tasks

if TYPE_CHECKING:
    from celeriac.app.app import App
    from celeriac.worker.worker import Worker

log = logging.getLogger("celeriac.worker")

# Each step requires only what it uses, so --without-mingle/-gossip/-heartbeat can leave steps out; the order
# here (kept by the blueprint where requires allow) is Celery's: Connection -> Events -> Mingle -> Gossip ->
# Tasks -> RemoteControl -> Heart -> Loop.
DEFAULT_STEPS: tuple[type[Step[Consumer]], ...] = (
    Connection,
    Events,
    Mingle,
    Gossip,
    Tasks,
    RemoteControl,
    Heart,
    Loop,
)


class Consumer:
    """The part of the worker that talks to the broker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.app: App = worker.app
        steps: list[type[Step[Consumer]]] = [*DEFAULT_STEPS, *worker.app.steps["consumer"]]
        self.blueprint: Blueprint[Consumer] = Blueprint("consumer", steps)
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._lost: asyncio.Event = asyncio.Event()
        self._lost_reason: BaseException | None = None
        self.connection_errors = 0

    @property
    def stopping(self) -> bool:
        """True once `stop` was called (steps stopping now are not coming back, unlike on a reconnect)."""
        return self._stop.is_set()

    def connection_lost(self, reason: BaseException) -> None:
        """Called by a step when the broker link broke: the run loop restarts the steps."""
        if not self._stop.is_set():
            self._lost_reason = reason
            self._lost.set()

    async def run(self) -> None:
        """Start the steps and keep them running, reconnecting with capped, jittered backoff."""
        self.blueprint.apply(self)
        delay = 0.2
        max_retries = self.app.conf.broker_connection_max_retries
        while not self._stop.is_set():
            self._lost.clear()
            try:
                await self.blueprint.start(self)
            except (ConnectionLost, TransportError, OSError) as exc:
                self.connection_errors += 1
                if not self.app.conf.broker_connection_retry or (
                    max_retries is not None and self.connection_errors > max_retries
                ):
                    raise
                log.error("Cannot connect to %s: %s. Trying again in %.1fs", self.app.redacted_broker_url(), exc, delay)
                await self._pause(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.2
            self.connection_errors = 0
            stop_wait = asyncio.create_task(self._stop.wait())
            lost_wait = asyncio.create_task(self._lost.wait())
            await asyncio.wait({stop_wait, lost_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            lost_wait.cancel()
            if self._stop.is_set():
                return
            log.warning("Connection to broker lost (%s); reconnecting", self._lost_reason)
            # The old link is gone: unstarted messages will be redelivered by the broker, drop our copies.
            await self.blueprint.stop(self, terminate=False)
            await self._pause(delay * random.uniform(0.5, 1.5))

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def stop(self, terminate: bool = False) -> None:
        """Stop the steps (warm: finish running tasks; cold: cancel them)."""
        self._stop.set()
        await self.blueprint.stop(self, terminate=terminate)
