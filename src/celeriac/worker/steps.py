"""The worker's own steps: Timer, Pool, Consumer (Queues, StateDB, Beat, Autoscale slot in the same way)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from celeriac.pools import by_name
from celeriac.pools.base import Pool
from celeriac.worker.bootsteps import Step
from celeriac.worker.consumer.consumer import Consumer
from celeriac.worker.timer import Timer

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

log = logging.getLogger("celeriac.worker")


class TimerStep(Step["Worker"]):
    """Owns the timer for ETA tasks."""

    def __init__(self) -> None:
        self.timer = Timer()

    async def stop(self, worker: Worker) -> None:
        self.timer.cancel_all()


class PoolStep(Step["Worker"]):
    """Owns the pool that runs task bodies."""

    def __init__(self) -> None:
        self.pool: Pool | None = None

    async def start(self, worker: Worker) -> None:
        pool = by_name(worker.pool_name)(worker.concurrency, worker.app.tasks, worker.app.conf)
        await pool.start()
        self.pool = pool

    async def stop(self, worker: Worker) -> None:
        if self.pool is not None:
            await self.pool.stop()
            await self.pool.close()

    async def terminate(self, worker: Worker) -> None:
        if self.pool is not None:
            await self.pool.terminate()
            await self.pool.close()


class ConsumerStep(Step["Worker"]):
    """Runs the consumer (and its reconnect loop) in a task of its own."""

    requires = (TimerStep, PoolStep)

    def __init__(self) -> None:
        self.consumer: Consumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, worker: Worker) -> None:
        consumer = Consumer(worker)
        self.consumer = consumer
        self._task = asyncio.create_task(consumer.run(), name="consumer")
        ready = asyncio.create_task(consumer.ready.wait())
        await asyncio.wait({self._task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():  # the consumer gave up before it was ready: surface why
            ready.cancel()
            self._task.result()
        self._task.add_done_callback(worker.consumer_finished)

    async def _finish(self, worker: Worker, terminate: bool) -> None:
        if self.consumer is not None:
            await self.consumer.stop(terminate=terminate)
        if self._task is not None:
            self._task.remove_done_callback(worker.consumer_finished)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def stop(self, worker: Worker) -> None:
        await self._finish(worker, terminate=False)

    async def terminate(self, worker: Worker) -> None:
        await self._finish(worker, terminate=True)
