"""streaQ 7 on Redis streams: ``streaq run`` with one worker (its default concurrency, 16), ``await enqueue()``."""

from __future__ import annotations

import asyncio

from common import REDIS_URL, amark_done
from streaq import Worker

worker = Worker(redis_url=REDIS_URL, anyio_backend="asyncio")


@worker.task
async def noop() -> None:
    """Nothing."""


@worker.task
async def sentinel() -> None:
    await amark_done()


async def _enqueue(n: int) -> None:
    async with worker:
        for _ in range(n):
            await noop.enqueue()
        await sentinel.enqueue()


def enqueue(n: int) -> None:
    asyncio.run(_enqueue(n))
