"""SAQ 0.26 on Redis: one worker process with concurrency 8, ``await queue.enqueue()``."""

from __future__ import annotations

import asyncio
from typing import Any

from common import CONCURRENCY, REDIS_URL, amark_done
from saq import Queue

queue = Queue.from_url(REDIS_URL)


async def noop(ctx: Any) -> None:
    """Nothing."""


async def sentinel(ctx: Any) -> None:
    await amark_done()


settings = {"queue": queue, "functions": [noop, sentinel], "concurrency": CONCURRENCY}


async def _enqueue(n: int) -> None:
    await queue.connect()
    for _ in range(n):
        await queue.enqueue("noop")
    await queue.enqueue("sentinel")
    await queue.disconnect()


def enqueue(n: int) -> None:
    asyncio.run(_enqueue(n))
