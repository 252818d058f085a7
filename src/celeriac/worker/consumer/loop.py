"""Loop step: the last consumer step; once it starts, the consumer is running and ready for work."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from celeriac.worker.bootsteps import Step
from celeriac.worker.consumer.tasks import Tasks

if TYPE_CHECKING:
    from celeriac.worker.consumer.consumer import Consumer

log = logging.getLogger("celeriac.worker")


class Loop(Step["Consumer"]):
    """Marks the consumer ready; the consumer then runs until asked to stop or the connection is lost."""

    requires = (Tasks,)

    async def start(self, consumer: Consumer) -> None:
        consumer.ready.set()
        log.info("%s ready.", consumer.worker.hostname)

    async def stop(self, consumer: Consumer) -> None:
        consumer.ready.clear()
