"""A worker process whose Redis connections are killed keeps its place in the cluster: after reconnecting it
answers remote control again, and its heartbeats and task events keep coming."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from celeriac import App
from celeriac.events.receiver import EventReceiver
from celeriac.testing import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import WorkerProcess

pytestmark = pytest.mark.redis


async def kill_connections_of(url: str, pid: int) -> int:
    """Kill every Redis connection of process ``pid`` (celeriac names them ``celeriac-<host>-<pid>``)."""
    client = aioredis.Redis.from_url(url)
    killed = 0
    for entry in await client.client_list():
        if str(entry.get("name", "")).endswith(f"-{pid}"):
            killed += await client.client_kill_filter(_id=entry["id"])
    await client.aclose()
    return killed


async def answers(app: App, node: str) -> bool:
    return await app.control.aping(destination=[node], timeout=0.5) == [{node: {"ok": "pong"}}]


async def test_remote_control_and_events_survive_a_reconnect(redis_url: str, prefix: str) -> None:
    app = App(
        "taskapp",
        broker=redis_url,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
    )
    worker = WorkerProcess(
        redis_url,
        ["-n", "rc@itest", "--without-mingle", "--heartbeat-interval", "0.2", "-E"],
        env={"TEST_KEYPREFIX": prefix},
    )
    seen: list[dict[str, Any]] = []
    transport = app.make_transport()
    try:
        async with transport, EventReceiver(transport) as receiver:

            async def collect() -> None:
                async for event in receiver:
                    seen.append(event)

            collector = asyncio.create_task(collect())
            await asyncio.to_thread(worker.wait_for_output, "rc@itest ready.")
            # On a loaded machine the first reply can miss the 0.5 s ping window: ask until it answers.
            await wait_for(lambda: answers(app, "rc@itest"), timeout=30)
            assert await kill_connections_of(redis_url, worker.proc.pid) > 0
            before = len(seen)
            await wait_for(lambda: answers(app, "rc@itest"), timeout=30)
            await wait_for(lambda: any(e["type"] == "worker-heartbeat" for e in seen[before:]), timeout=10)
            result = await app.asend_task("taskapp.add", (2, 2))
            assert await result.aget(timeout=30) == 4
            await wait_for(lambda: any(e.get("uuid") == result.id and e["type"] == "task-succeeded" for e in seen))
            collector.cancel()
    finally:
        worker.signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.wait)
        await app.aclose()
    assert code == 0, worker.output
