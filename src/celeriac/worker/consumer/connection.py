"""Connection step: open the broker link the other consumer steps use, and close it on stop."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from celeriac.transports.base import Transport
from celeriac.worker.bootsteps import Step

if TYPE_CHECKING:
    from celeriac.worker.consumer.consumer import Consumer

log = logging.getLogger("celeriac.worker")


class Connection(Step["Consumer"]):
    """Owns the consumer's transport for one connection lifetime."""

    def __init__(self) -> None:
        self.transport: Transport | None = None

    async def start(self, consumer: Consumer) -> None:
        transport = consumer.app.make_transport()
        await transport.connect()
        self.transport = transport
        log.info("Connected to %s", transport.url)

    async def stop(self, consumer: Consumer) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            await transport.close()
