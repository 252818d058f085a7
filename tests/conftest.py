"""Service fixtures shared by every test: real brokers, isolated per test run.

A test that needs Redis or RabbitMQ skips when the service is unreachable, unless
``CELERIAC_REQUIRE_SERVICES=1`` (set by ``.ci/run``), where it fails instead.
Isolation: each run uses its own Redis database number *and* a unique queue/key prefix,
so concurrent runs never see each other's messages; nothing ever flushes a shared server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from celeriac.transports.base import TransportOptions
from celeriac.transports.redis.transport import RedisTransport

REQUIRE_SERVICES = os.environ.get("CELERIAC_REQUIRE_SERVICES") == "1"
RUN_ID = uuid.uuid4().hex[:8]
# Spread concurrent runs over databases 1..15 (db 0 is left to humans).
REDIS_DB = int(os.environ.get("CELERIAC_TEST_REDIS_DB", str(1 + int(RUN_ID, 16) % 15)))


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    """Skip the test when the service is down, or fail under CI."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (CELERIAC_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id unique to this test run, for queue names and key prefixes."""
    return RUN_ID


@pytest.fixture
def redis_url() -> str:
    """A Redis URL on this run's own database."""
    host = os.environ.get("CELERIAC_TEST_REDIS_HOST", "127.0.0.1")
    port = int(os.environ.get("CELERIAC_TEST_REDIS_PORT", "6379"))
    need_service("Redis", host, port)
    return f"redis://{host}:{port}/{REDIS_DB}"


def rabbitmqctl(*args: str, check: bool = True) -> str:
    """Run ``rabbitmqctl`` (this machine's broker; needs root) and return its output."""
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def make_vhost(name: str) -> None:
    """Create virtual host ``name`` with all permissions for guest."""
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")


@pytest.fixture(scope="session")
def amqp_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of this test run's own, deleted (with everything in it) at the end."""
    need_service("RabbitMQ", "127.0.0.1", 5672)
    if shutil.which("rabbitmqctl") is None:
        message = "rabbitmqctl is not installed (the AMQP tests make a virtual host per run)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    name = f"celeriac-test-{RUN_ID}"
    make_vhost(name)
    yield name
    rabbitmqctl("delete_vhost", name, check=False)


@pytest.fixture
def ctl() -> Callable[..., str]:
    """``rabbitmqctl`` as a function: ``ctl("list_queues", "-p", vhost, "name")`` returns its output."""
    return rabbitmqctl


@pytest.fixture
def amqp_url(amqp_vhost: str) -> str:
    """A RabbitMQ URL (guest/guest on loopback) into this run's own virtual host."""
    need_service("RabbitMQ", "127.0.0.1", 5672)
    return f"amqp://guest:guest@127.0.0.1:5672/{amqp_vhost}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """An embedded-broker URL on a fresh database file."""
    return f"sqlite:///{tmp_path / 'celeriac.db'}"


@pytest.fixture
def queue_name(run_id: str) -> Iterator[str]:
    """A queue name no other test or run uses."""
    yield f"t{run_id}-{uuid.uuid4().hex[:8]}"


def delete_redis_keys(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (a test's own namespace; never anything else on the shared server)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_url: str, queue_name: str) -> Iterator[str]:
    """A key prefix owned by this test (broker and result keys); every key under it is deleted afterwards."""
    value = f"{queue_name}:"
    yield value
    delete_redis_keys(redis_url, value)


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    """This test's own key prefix, under the name most Redis tests use (its keys are deleted afterwards)."""
    return redis_prefix


@pytest.fixture
def client_name(queue_name: str) -> str:
    """A ``CLIENT SETNAME`` of this test's own, to find its connections in ``CLIENT LIST``."""
    return f"celeriac-test-{queue_name}"


@pytest.fixture
async def raw(redis_url: str, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    """A plain redis-py client on the run's database, for looking at keys. It closes before ``redis_prefix``
    deletes the test's keys, so a fixture that depends on it has closed its connections by then."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def make(redis_url: str, prefix: str, client_name: str, raw: aioredis.Redis) -> Callable[..., RedisTransport]:
    """Makes Redis transports under this test's prefix and client name (``async with`` connects and closes)."""

    def factory(visibility_timeout: float = 3600.0, max_deliveries: int = 10, **extra: Any) -> RedisTransport:
        options = TransportOptions(
            visibility_timeout=visibility_timeout,
            max_deliveries=max_deliveries,
            extra={"global_keyprefix": prefix, "client_name": client_name, **extra},
        )
        return RedisTransport(redis_url, options)

    return factory


@pytest.fixture
async def transport(make: Callable[..., RedisTransport]) -> AsyncIterator[RedisTransport]:
    """A connected Redis transport under this test's prefix."""
    async with make() as t:
        yield t
