"""Tasks step: consume the worker's queues within the prefetch window and hand each delivery to the strategy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from celeriac.errors import ConnectionLost, TransportClosed
from celeriac.transports.base import QueueConsumer
from celeriac.worker.bootsteps import Step
from celeriac.worker.consumer.connection import Connection
from celeriac.worker.strategy import Strategy
from celeriac.worker.tracer import Tracer

if TYPE_CHECKING:
    from celeriac.worker.consumer.consumer import Consumer

log = logging.getLogger("celeriac.worker")


class Tasks(Step["Consumer"]):
    """Reads task messages; on stop, stops fetching and returns unstarted messages to the broker."""

    requires = (Connection,)

    def __init__(self) -> None:
        self.queue_consumer: QueueConsumer | None = None
        self.strategy: Strategy | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, consumer: Consumer) -> None:
        worker = consumer.worker
        transport = consumer.blueprint.get(Connection).transport
        assert transport is not None
        declared = consumer.app.declared_queues()
        for queue in worker.queues:
            await transport.declare(queue)
            spec = declared.get(queue)
            if spec is not None and spec.bound:  # task_queues: reachable through its exchange and routing key
                await transport.bind(queue, spec.exchange_name, spec.key)
        prefetch = worker.prefetch_count
        self.queue_consumer = transport.consume(worker.queues, prefetch)
        backend = await consumer.app.abackend() if consumer.app.backend_url else None
        tracer = Tracer(worker.pool, worker.state, worker.listeners, backend, worker.hostname, worker.on_stored)
        self.strategy = Strategy(consumer.app, tracer, worker.timer, self.queue_consumer, worker.hostname)
        self.strategy.prefetch = prefetch
        self._reader = asyncio.create_task(self._read(consumer, self.queue_consumer, self.strategy))

    async def _read(self, consumer: Consumer, queue_consumer: QueueConsumer, strategy: Strategy) -> None:
        try:
            async for delivery in queue_consumer:
                await strategy.handle(delivery)
        except (ConnectionLost, TransportClosed) as exc:
            consumer.connection_lost(exc)
        except Exception as exc:  # a bug must not leave a silent, idle worker: reconnect and go on
            log.exception("Consumer crashed; reconnecting")
            consumer.connection_lost(exc)

    async def _stop_reading(self) -> None:
        if self.queue_consumer is not None:
            with contextlib.suppress(Exception):
                await self.queue_consumer.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None

    async def stop(self, consumer: Consumer) -> None:
        """Warm: stop fetching, return unstarted messages, wait for running tasks (they ack on this link)."""
        await self._stop_reading()
        if self.strategy is not None:
            await self.strategy.release_held()
        await consumer.worker.wait_tasks_done()
        if self.strategy is not None:  # the early acks of the last tasks go out on this link too
            await self.strategy.tracer.wait_acks()
        self.queue_consumer = None

    async def terminate(self, consumer: Consumer) -> None:
        """Cold: stop fetching, cancel running tasks (acks_late ones are requeued), return the rest."""
        await self._stop_reading()
        await consumer.worker.pool.terminate()
        if self.strategy is not None:
            await self.strategy.release_held()
        self.queue_consumer = None
