"""Shared set-up for the cluster tests: apps on a real broker (SQLite file, or Redis under a key prefix of its
own so fanout channels and keys never meet another test's), and workers that talk to each other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis

from celeriac import App

# A worker that takes part in the cluster (start_worker leaves these off by default), with quick heartbeats.
CLUSTER = {"without_mingle": False, "without_gossip": False, "without_heartbeat": False, "heartbeat_interval": 0.2}


@dataclass
class Broker:
    """Makes apps on one broker; ``kind`` is ``sqlite`` or ``redis``."""

    kind: str
    url: str
    options: dict[str, Any]

    def app(self, name: str = "cluster", **settings: Any) -> App:
        backend_options = {"global_keyprefix": self.options["global_keyprefix"]} if self.kind == "redis" else {}
        return App(
            name,
            broker=self.url,
            broker_transport_options=dict(self.options),
            result_backend_transport_options=backend_options,
            **settings,
        )


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


def reply_of(replies: dict[str, Any], node: str) -> Any:
    """One node's reply, with a readable failure when it did not answer."""
    assert node in replies, f"{node} did not reply: {replies}"
    return replies[node]


Predicate = Callable[[], bool]
