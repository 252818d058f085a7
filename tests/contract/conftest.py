"""Which brokers and result stores the contract suite runs against: add one with one line in a table.

Each entry names the URL fixture of tests/conftest.py (which skips when the service is down). A broker whose
keys live in a shared namespace also names the transport option that takes a key prefix, and every test
gets its own prefix there.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import redis.asyncio as aioredis

from celeriac.backends import from_url as backend_from_url
from celeriac.backends.base import BackendOptions, ResultBackend
from celeriac.testing.contract import BackendFactory, TransportFactory
from celeriac.transports import from_url as transport_from_url
from celeriac.transports.base import Transport, TransportOptions


@dataclass(frozen=True)
class Broker:
    url_fixture: str
    higher_priority_first: bool = True
    prefix_option: str | None = None  # transport option taking a per-test key prefix
    settings: dict[str, Any] = field(default_factory=dict)  # TransportOptions.broker_settings
    queue_order: bool = True  # earlier queues are served first


TRANSPORTS = {
    "sqlite": Broker("sqlite_url"),
    "redis": Broker("redis_url", higher_priority_first=False, prefix_option="global_keyprefix"),
    # Priorities work on RabbitMQ only on queues declared with x-max-priority (task_queue_max_priority).
    "amqp": Broker("amqp_url", settings={"task_queue_max_priority": 10}, queue_order=False),
}

BACKENDS = {
    "sqlite": Broker("sqlite_url"),
    "redis": Broker("redis_url", prefix_option="global_keyprefix"),
}


@pytest.fixture(params=list(TRANSPORTS))
async def make_transport(request: pytest.FixtureRequest) -> AsyncIterator[TransportFactory]:
    """Makes unconnected transports to the broker under test; any left open are closed afterwards."""
    broker = TRANSPORTS[request.param]
    url: str = request.getfixturevalue(broker.url_fixture)
    made: list[Transport] = []
    prefix = f"contract-{uuid.uuid4().hex[:8]}:"

    def make(options: TransportOptions) -> Transport:
        if broker.prefix_option is not None:
            options = replace(options, extra={broker.prefix_option: prefix, **options.extra})
        if broker.settings:
            options = replace(options, broker_settings={**broker.settings, **options.broker_settings})
        transport = transport_from_url(url, options)
        made.append(transport)
        return transport

    yield TransportFactory(make, higher_priority_first=broker.higher_priority_first, queue_order=broker.queue_order)
    for transport in made:
        await transport.close()
    if broker.prefix_option is not None:
        await delete_prefixed(url, prefix)


async def delete_prefixed(url: str, prefix: str) -> None:
    """Delete the keys this test created under its own prefix (never anything else on the shared server)."""

    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=list(BACKENDS))
async def make_backend(request: pytest.FixtureRequest) -> AsyncIterator[BackendFactory]:
    """Makes unconnected result backends of the kind under test; any left open are closed afterwards."""
    store = BACKENDS[request.param]
    url: str = request.getfixturevalue(store.url_fixture)
    made: list[ResultBackend] = []
    prefix = f"contract-{uuid.uuid4().hex[:8]}:"

    def make(options: BackendOptions) -> ResultBackend:
        if store.prefix_option is not None:
            options = replace(options, extra={store.prefix_option: prefix, **options.extra})
        backend = backend_from_url(url, options)
        made.append(backend)
        return backend

    yield BackendFactory(make)
    for backend in made:
        await backend.close()
    if store.prefix_option is not None:
        await delete_prefixed(url, prefix)
