"""Fixtures of the integration tests: ``broker``, each cluster test once on SQLite and once on Redis."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import Broker

from celeriac import App


@pytest.fixture(params=["sqlite", "redis"])
async def broker(request: pytest.FixtureRequest, queue_name: str) -> AsyncIterator[Broker]:
    """A broker for the test; on Redis every key (and channel) is under a prefix deleted afterwards."""
    if request.param == "sqlite":
        yield Broker("sqlite", request.getfixturevalue("sqlite_url"), {"polling_interval": 0.02})
        return
    url: str = request.getfixturevalue("redis_url")
    prefix = f"{queue_name}:"
    yield Broker("redis", url, {"global_keyprefix": prefix})
    client = aioredis.Redis.from_url(url)
    async for key in client.scan_iter(match=prefix + "*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def producer(redis_url: str, prefix: str) -> Iterator[App]:
    """A client app (``scaleapp``, the `scalekit` workers' app) sending under this test's own Redis key prefix."""
    app = App("scaleapp", broker=redis_url)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    yield app
    app.close()
