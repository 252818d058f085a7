"""The worker's ``Beat`` step (``worker -B``): the beat service on the worker's own loop, one per worker.

Every worker may run it: the lease makes exactly one of them fire (see `celeriac.beat.service`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from celeriac.beat.service import Beat
from celeriac.worker.bootsteps import Step

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

log = logging.getLogger(__name__)


class BeatStep(Step["Worker"]):
    """Runs `Beat` next to the worker; stops it (releasing the lease) before the worker's other steps stop."""

    def __init__(self) -> None:
        self.beat: Beat | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return "Beat"

    async def start(self, worker: Worker) -> None:
        self.beat = Beat(worker.app, holder=f"{worker.hostname}/beat")
        await self.beat.check()  # a backend that cannot hold the lease stops the worker's start in one line
        self._task = asyncio.create_task(self._run(self.beat), name="beat")

    @staticmethod
    async def _run(beat: Beat) -> None:
        try:
            await beat.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # the worker goes on serving tasks; the other workers' beats take over
            log.exception("beat stopped by an error; this worker no longer runs periodic tasks")

    async def stop(self, worker: Worker) -> None:
        if self.beat is not None:
            self.beat.stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await asyncio.wait_for(asyncio.shield(self._task), timeout=5.0)
                except TimeoutError:
                    self._task.cancel()
                    await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def terminate(self, worker: Worker) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
