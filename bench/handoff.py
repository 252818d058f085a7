"""The floor under every round trip on this machine: one process LPUSHes, another is woken from BLMOVE.

Usage (from the repository root, with .venv's python)::

    python bench/handoff.py [--redis redis://127.0.0.1:6379/13] [--count 1000]

No celeriac code runs: two processes with redis-py's asyncio client on uvloop (as the worker uses). The waiter
blocks in ``BLMOVE``; the pusher LPUSHes its ``time.monotonic()`` once per millisecond (so the waiter is idle, as
a worker between tasks is); the waiter records how long after that timestamp it holds the reply. Both processes
read the same monotonic clock. The two keys are the run's own and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
import uuid

import redis.asyncio as aioredis
import uvloop

from brokers import DEFAULT_REDIS


def _wait(url: str, key: str, count: int, ready: multiprocessing.Queue[object]) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(url)
        await client.ping()
        ready.put("ready")
        delays = []
        for _ in range(count):
            stamp = await client.blmove(key, key + ".done", 0, "RIGHT", "RIGHT")
            delays.append(time.monotonic() - float(stamp))
        ready.put(delays)
        await client.aclose()

    uvloop.run(main())


async def _push(url: str, key: str, count: int) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        for _ in range(count):
            await client.lpush(key, repr(time.monotonic()))
            await asyncio.sleep(0.001)
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    key = f"celeriac-bench:handoff:{uuid.uuid4().hex}"
    queue: multiprocessing.Queue[object] = multiprocessing.Queue()
    waiter = multiprocessing.Process(target=_wait, args=(args.redis, key, args.count, queue))
    waiter.start()
    try:
        queue.get(timeout=30)
        uvloop.run(_push(args.redis, key, args.count))
        delays = sorted(queue.get(timeout=60))  # type: ignore[arg-type]
    finally:
        waiter.join(5)
        if waiter.is_alive():
            waiter.kill()

        async def cleanup() -> None:
            client = aioredis.Redis.from_url(args.redis)
            await client.delete(key, key + ".done")
            await client.aclose()

        asyncio.run(cleanup())
    ms = [d * 1000 for d in delays]
    print(
        f"LPUSH -> BLMOVE woken in another process, {len(ms)} hand-offs: p10 {ms[len(ms) // 10]:.3f} ms, "
        f"p50 {statistics.median(ms):.3f} ms, p90 {ms[len(ms) * 9 // 10]:.3f} ms"
    )


if __name__ == "__main__":
    main()
