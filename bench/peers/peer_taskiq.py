"""taskiq 0.13 with taskiq-redis's list queue: ``taskiq worker`` defaults (two processes), ``await kiq()``."""

from __future__ import annotations

import asyncio

from common import REDIS_URL, amark_done
from taskiq_redis import ListQueueBroker

broker = ListQueueBroker(REDIS_URL)


@broker.task(task_name="noop")
async def noop() -> None:
    """Nothing."""


@broker.task(task_name="sentinel")
async def sentinel() -> None:
    await amark_done()


async def _enqueue(n: int) -> None:
    await broker.startup()
    for _ in range(n):
        await noop.kiq()
    await sentinel.kiq()
    await broker.shutdown()


def enqueue(n: int) -> None:
    asyncio.run(_enqueue(n))
