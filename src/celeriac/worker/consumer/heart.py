"""Heart step: worker-online when the consumer starts, worker-heartbeat every ``freq`` seconds, worker-offline
on shutdown (celery-wire.md §4.3, §7.1). Receivers and gossiping peers count a worker gone after ``2 * freq``
seconds without a heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
from typing import TYPE_CHECKING, Any

from celeriac._version import __version__
from celeriac.events.model import WORKER_HEARTBEAT, WORKER_OFFLINE, WORKER_ONLINE
from celeriac.worker.bootsteps import Step
from celeriac.worker.consumer.events import Events

if TYPE_CHECKING:
    from celeriac.worker.consumer.consumer import Consumer

SW_IDENT = "py-celeriac"


def load_average() -> list[float]:
    """The 1/5/15-minute load, rounded up to 2 decimals (``[0.0, 0.0, 0.0]`` where there is none)."""
    try:
        loads = os.getloadavg()
    except (AttributeError, OSError):
        return [0.0, 0.0, 0.0]
    return [math.ceil(value * 100) / 100 for value in loads]


class Heart(Step["Consumer"]):
    """Sends the worker's heartbeats (``--without-heartbeat`` leaves it out)."""

    requires = (Events,)

    def __init__(self) -> None:
        self._consumer: Consumer | None = None
        self._beating: asyncio.Task[None] | None = None

    def include_if(self, consumer: Consumer) -> bool:
        return not consumer.worker.without_heartbeat

    def fields(self) -> dict[str, Any]:
        """The fields of a worker event now."""
        assert self._consumer is not None
        worker = self._consumer.worker
        return {
            "freq": float(worker.heartbeat_interval),
            "active": len(worker.state.active),
            "processed": worker.state.processed,
            "loadavg": load_average(),
            "sw_ident": SW_IDENT,
            "sw_ver": __version__,
            "sw_sys": platform.system(),
        }

    def send(self, event_type: str = WORKER_HEARTBEAT) -> None:
        """Send one worker event now (also the ``heartbeat`` remote command)."""
        if self._consumer is None:
            return
        dispatcher = self._consumer.blueprint.get(Events).dispatcher
        if dispatcher is not None:
            dispatcher.send(event_type, **self.fields())

    async def start(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self.send(WORKER_ONLINE)
        self._beating = asyncio.create_task(self._beat(consumer.worker.heartbeat_interval), name="heart")

    async def _beat(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.send()

    async def stop(self, consumer: Consumer) -> None:
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
            self._beating = None
        if consumer.stopping:  # a reconnect is not a goodbye
            self.send(WORKER_OFFLINE)
