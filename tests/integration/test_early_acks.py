"""Early acks: the pool slot is free before the ack lands, yet a warm shutdown leaves nothing un-acked."""

from __future__ import annotations

import redis.asyncio as aioredis
from cluster import Broker

from celeriac.testing import start_worker, wait_for


async def test_warm_shutdown_waits_for_every_early_ack(broker: Broker, queue_name: str) -> None:
    app = broker.app("acks", task_default_queue=queue_name)

    @app.task(ignore_result=True)
    async def noop() -> None:
        """Nothing: the ack is still on the wire when the body ends."""

    count = 300
    for _ in range(count):
        await noop.adelay()
    try:
        async with start_worker(app, pool="asyncio", concurrency=8) as worker:
            await wait_for(lambda: worker.state.processed == count, timeout=30)
        # The worker has stopped (warm): every ack it sent has landed. None of those messages went back to the
        # queue (a delivery whose ack had not landed would be restored at close and run again).
        transport = await app.atransport()
        assert await transport.size(queue_name) == 0
        if broker.kind == "redis":  # and none is left in unacked for the visibility timeout
            raw = aioredis.Redis.from_url(broker.url)
            prefix = broker.options["global_keyprefix"]
            try:
                assert await raw.hlen(f"{prefix}unacked") == 0
                assert await raw.zcard(f"{prefix}unacked_index") == 0
            finally:
                await raw.aclose()
    finally:
        await app.aclose()
