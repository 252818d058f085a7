"""What every peer app shares: where Redis is, and the key the sentinel task sets when it runs.

Imported inside each peer's own virtualenv; only redis-py (which every peer here installs) is used.
"""

from __future__ import annotations

import os
import time

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
DONE_KEY = os.environ.get("BENCH_DONE_KEY", "bench-peers:done")
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))


def mark_done() -> None:
    """The sentinel's body: record that it ran (the harness polls for the key)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.set(DONE_KEY, repr(time.time()))
    client.close()


async def amark_done() -> None:
    """`mark_done` for async task bodies."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(REDIS_URL)
    await client.set(DONE_KEY, repr(time.time()))
    await client.aclose()
