"""`celeriac._redis.lane.Lane`: a connection of one caller's own, against a real Redis (the run's own database)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
import redis.exceptions as redis_exc

from celeriac._redis.client import make_client
from celeriac._redis.lane import Lane

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(redis_url: str, client_name: str) -> AsyncIterator[aioredis.Redis]:
    """A celeriac client under the test's own client name (to find its connections in CLIENT LIST)."""
    made = make_client(redis_url, {"client_name": client_name})
    yield made
    await made.aclose()


async def lane_connections(raw: aioredis.Redis, name: str) -> list[dict[str, object]]:
    return [c for c in await raw.client_list() if c.get("name") == name]


async def test_commands_pipelines_and_errors(client: aioredis.Redis, redis_prefix: str) -> None:
    lane = Lane(client)
    try:
        key = f"{redis_prefix}list"
        assert await lane.execute("RPUSH", key, "a") == 1
        replies = await lane.pipeline([("RPUSH", key, "b"), ("INCR", key), ("LLEN", key)])
        assert replies[0] == 2 and isinstance(replies[1], redis_exc.ResponseError) and replies[2] == 2
        with pytest.raises(redis_exc.ResponseError):
            await lane.execute("INCR", key)  # WRONGTYPE, raised; the connection stays in step
        assert await lane.execute("LRANGE", key, 0, -1) == [b"a", b"b"]
    finally:
        await lane.close()


async def test_a_script_the_server_does_not_know_is_loaded_and_run(client: aioredis.Redis) -> None:
    lane = Lane(client)
    try:
        # A script text no other test uses, so the server has never seen it: EVALSHA fails, the lane loads it.
        script = client.register_script(f"-- {uuid.uuid4()}\nreturn ARGV[1] .. KEYS[1]")
        assert await lane.script(script, ["k"], ["v"]) == b"vk"
        assert await lane.script(script, ["x"], ["y"]) == b"yx"  # loaded now: one EVALSHA
    finally:
        await lane.close()


async def test_a_killed_connection_is_replaced_and_the_command_sent_again(
    client: aioredis.Redis, raw: aioredis.Redis, client_name: str, redis_prefix: str
) -> None:
    lane = Lane(client)
    try:
        assert await lane.execute("PING") == b"PONG"
        (connection,) = await lane_connections(raw, client_name)
        await raw.client_kill_filter(_id=str(connection["id"]))
        assert await lane.execute("SET", f"{redis_prefix}k", "v") == b"OK"
        assert await raw.get(f"{redis_prefix}k") == b"v"
        assert len(await lane_connections(raw, client_name)) == 1
    finally:
        await lane.close()


async def test_a_cancelled_round_trip_drops_its_connection(
    client: aioredis.Redis, raw: aioredis.Redis, client_name: str, redis_prefix: str
) -> None:
    lane = Lane(client)
    try:
        key = f"{redis_prefix}empty"
        assert await lane.execute("PING") == b"PONG"  # connected: a cancel now cannot land in redis-py's connect
        waiting = asyncio.ensure_future(lane.execute("BLPOP", key, 5))
        for _ in range(500):  # until Redis has it blocked (at most 5 s)
            if [c for c in await lane_connections(raw, client_name) if c.get("cmd") == "blpop"]:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the BLPOP never reached the server")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # Had the connection been kept, this would read BLPOP's reply (or wait for it): it gets its own.
        await client.rpush(key, "late")
        assert await lane.execute("LLEN", key) == 1
    finally:
        await lane.close()


async def test_a_call_while_the_lane_is_busy_goes_through_the_pool(client: aioredis.Redis, redis_prefix: str) -> None:
    lane = Lane(client)
    try:
        key = f"{redis_prefix}q"
        blocked = asyncio.ensure_future(lane.execute("BLPOP", key, 10))  # holds the lane until a value comes
        assert await asyncio.wait_for(lane.execute("RPUSH", key, "x"), 5) == 1  # not queued behind it
        assert await asyncio.wait_for(blocked, 5) == [key.encode(), b"x"]
    finally:
        await lane.close()
