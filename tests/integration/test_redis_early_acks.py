"""Early acks on Redis: the pool slot is free before the ack lands, yet a warm shutdown leaves nothing un-acked."""

from __future__ import annotations

import redis.asyncio as aioredis

from celeriac import App
from celeriac.testing import start_worker, wait_for


async def test_warm_shutdown_waits_for_every_early_ack(redis_url: str, redis_prefix: str) -> None:
    app = App("acks", broker=redis_url)
    app.conf.broker_transport_options = {"global_keyprefix": redis_prefix}

    @app.task(ignore_result=True)
    async def noop() -> None:
        """Nothing: the ack is still on the wire when the body ends."""

    count = 300
    for _ in range(count):
        await noop.adelay()
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with start_worker(app, pool="asyncio", concurrency=8) as worker:
            await wait_for(lambda: worker.state.processed == count, timeout=30)
        # The worker has stopped (warm): every ack it sent has landed, none is left to the visibility timeout.
        assert await client.hlen(f"{redis_prefix}unacked") == 0
        assert await client.zcard(f"{redis_prefix}unacked_index") == 0
        assert await client.llen(f"{redis_prefix}celery") == 0
    finally:
        await client.aclose()
        await app.aclose()
