"""Subscribing to a task's result channel at send time (Redis result backend), against a real Redis.

The client SUBSCRIBEs before it publishes; the record published on the channel is kept for the ``get()`` that
follows, which then needs no command; the bookkeeping is bounded; a setting turns it off; a dropped pub/sub
link, a record stored before the subscription and a cancelled wait lose nothing. Every key and channel is under
the test's own prefix on the run's own database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from celeriac import App
from celeriac._portal import portal
from celeriac.backends.base import BackendOptions, TaskMeta
from celeriac.backends.redis.backend import RedisBackend
from celeriac.backends.redis.listener import ListenerStatistics
from celeriac.errors import ConfigurationError
from celeriac.testing import start_worker, wait_for
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.redis


def meta(task_id: str, status: str = "SUCCESS", result: Any = None) -> TaskMeta:
    return TaskMeta(task_id=task_id, status=status, result=result, traceback=None, children=[], date_done=None)


MakeBackend = Callable[..., RedisBackend]
IDLE = ListenerStatistics(subscribed=0, waiting=0, pending=0, received=0)


@pytest.fixture
def make_backend(redis_url: str, redis_prefix: str, client_name: str) -> MakeBackend:
    """Makes backends (connected by ``async with``) under the test's prefix and client name."""

    def make(url: str = redis_url, **options: Any) -> RedisBackend:
        extra = {"global_keyprefix": redis_prefix, "client_name": client_name}
        return RedisBackend(url, BackendOptions(expires=60, extra=extra, **options))

    return make


@pytest.fixture
async def backend(make_backend: MakeBackend) -> AsyncIterator[RedisBackend]:
    async with make_backend() as b:
        yield b


def make_app(broker: str, prefix: str, backend: str | None = None, **settings: Any) -> App:
    app = App("subscribe-test", broker=broker, backend=backend, **settings)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    return app


async def numsub(raw: aioredis.Redis, channel: str) -> int:
    """How many connections of the server subscribe to ``channel`` (PUBSUB NUMSUB)."""
    reply = await raw.pubsub_numsub(channel)
    return int(reply[0][1])


async def unsubscribed(raw: aioredis.Redis, *channels: str) -> bool:
    """Whether no connection subscribes to any of ``channels`` any more."""
    counts = [await numsub(raw, channel) for channel in channels]
    return not any(counts)


async def redis_backend(app: App) -> RedisBackend:
    backend = await app.abackend()
    assert isinstance(backend, RedisBackend)
    return backend


# -- the send path -------------------------------------------------------------------------------------------


async def test_send_subscribes_before_it_publishes(
    redis_url: str, redis_prefix: str, raw: aioredis.Redis, queue_name: str
) -> None:
    app = make_app(redis_url, redis_prefix)
    try:
        result = await app.asend_task("tests.nothing", (1,), queue=queue_name)
        channel = f"{redis_prefix}celery-task-meta-{result.id}"
        # SUBSCRIBE was written before the LPUSH, whose reply send_task waited for: already in effect.
        assert await numsub(raw, channel) == 1
        assert await raw.llen(f"{redis_prefix}{queue_name}") == 1
        stats = (await redis_backend(app)).statistics()
        assert (stats.pending, stats.received, stats.waiting) == (1, 0, 0)

        ignored = await app.asend_task("tests.nothing", queue=queue_name, ignore_result=True)
        assert await numsub(raw, f"{redis_prefix}celery-task-meta-{ignored.id}") == 0
        assert (await redis_backend(app)).statistics().pending == 1
    finally:
        await app.aclose()


async def test_published_record_is_kept_and_read_without_a_command(
    redis_url: str, redis_prefix: str, raw: aioredis.Redis, queue_name: str
) -> None:
    target = raw.connection_pool.connection_kwargs
    async with TcpProxy(target["host"], target["port"]) as proxy:
        backend_url = f"redis://127.0.0.1:{proxy.port}/{target.get('db', 0)}"
        app = make_app(redis_url, redis_prefix, backend=backend_url)
        try:
            result = await app.asend_task("tests.nothing", queue=queue_name)
            channel = f"{redis_prefix}celery-task-meta-{result.id}"
            # Published only, never stored: nothing but the message itself can answer the get() below.
            record = meta(result.id, result={"answer": 42})
            assert await raw.publish(channel, json.dumps(meta(result.id, "STARTED"))) == 1
            assert await raw.publish(channel, json.dumps(record)) == 1
            backend = await redis_backend(app)
            await wait_for(lambda: backend.statistics().received == 1, timeout=10)
            await wait_for(lambda: unsubscribed(raw, channel), timeout=10)  # unsubscribed once answered

            await proxy.stop()  # every link to the result store is cut: any command would now fail
            assert await result.aget(timeout=5) == {"answer": 42}
            assert await result.astate() == "SUCCESS"
            assert backend.statistics() == IDLE
        finally:
            await app.aclose()


async def test_delay_get_round_trips_with_a_worker(redis_url: str, redis_prefix: str, queue_name: str) -> None:
    app = make_app(redis_url, redis_prefix, task_default_queue=queue_name)

    @app.task
    async def double(x: int) -> int:
        return 2 * x

    async with start_worker(app, concurrency=4):
        results = [await double.adelay(n) for n in range(20)]
        assert [await r.aget(timeout=10) for r in results] == [2 * n for n in range(20)]
        backend = await redis_backend(app)
        await wait_for(lambda: backend.statistics().subscribed == 0, timeout=10)
        assert backend.statistics().received == 0
    await app.aclose()


def test_sync_get_takes_a_received_record(redis_url: str, redis_prefix: str, queue_name: str) -> None:
    # send_task on the portal loop; the "worker" is a plain store after the send.
    app = make_app(redis_url, redis_prefix)
    try:
        result = app.send_task("tests.nothing", (3,), queue=queue_name)

        async def complete() -> None:
            async with RedisBackend(redis_url, BackendOptions(extra={"global_keyprefix": redis_prefix})) as store:
                await store.store(meta(result.id, result=9))

        async def received() -> bool:
            return (await redis_backend(app)).statistics().received == 1

        asyncio.run(complete())
        deadline = time.monotonic() + 10
        while not portal.run(received()):
            assert time.monotonic() < deadline, "the record was not received within 10 s"
            time.sleep(0.01)

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            assert pool.submit(result.get, 10).result(timeout=5) == 9
        assert result.get(timeout=10) == 9  # the handle keeps a ready record
        assert portal.run(redis_backend(app)).statistics().received == 0
    finally:
        app.close()


def test_sync_get_is_handed_the_record_without_a_hop_onto_the_portal_loop(
    redis_url: str, redis_prefix: str, queue_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(redis_url, redis_prefix)
    try:
        result = app.send_task("tests.nothing", (3,), queue=queue_name)
        hops: list[object] = []
        run = portal.run
        monkeypatch.setattr(portal, "run", lambda coro, timeout=None: hops.append(coro) or run(coro, timeout))
        other = app.AsyncResult(str(uuid.uuid4()))  # not sent here: nothing expects it

        async def complete(task_id: str, value: int) -> None:
            async with RedisBackend(redis_url, BackendOptions(extra={"global_keyprefix": redis_prefix})) as store:
                await store.store(meta(task_id, result=value))

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(result.get, 10)  # blocks in its own thread until the listener hands it the record
            asyncio.run(complete(result.id, 9))
            assert waiting.result(timeout=10) == 9
        assert hops == []  # the listener handed the record to the waiting thread: no hop onto the portal loop
        # A result nothing expects is waited for on the loop, as before.
        asyncio.run(complete(other.id, 5))
        assert other.get(timeout=10) == 5
        assert len(hops) == 1
    finally:
        app.close()


# -- the safety net, bounds and settings ---------------------------------------------------------------------


async def test_record_stored_before_the_subscription_is_found(backend: RedisBackend) -> None:
    task_id = str(uuid.uuid4())
    await backend.store(meta(task_id, result="early"))  # e.g. a task re-sent under the id of a finished one
    await backend.expect(task_id)
    await wait_for(lambda: backend.statistics().received == 1, timeout=10)  # read once, after confirmation
    assert (await backend.wait(task_id, timeout=5))["result"] == "early"


async def test_pending_subscriptions_are_capped_oldest_first(
    make_backend: MakeBackend, raw: aioredis.Redis, redis_prefix: str
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    channels = [f"{redis_prefix}celery-task-meta-{task_id}" for task_id in ids]
    async with make_backend(unread_limit=3) as backend, make_backend() as store:
        for task_id in ids:
            await backend.expect(task_id)
        assert backend.statistics().pending == 3
        await wait_for(lambda: unsubscribed(raw, *channels[:2]), timeout=10)
        assert [await numsub(raw, c) for c in channels[2:]] == [1, 1, 1]

        for n, task_id in enumerate(ids):
            await store.store(meta(task_id, result=n))
        await wait_for(lambda: backend.statistics().received == 3, timeout=10)
        # Dropped ones fall back to subscribing and reading the key when waited for.
        assert [(await backend.wait(task_id, timeout=5))["result"] for task_id in ids] == [0, 1, 2, 3, 4]
        assert backend.statistics().received == 0


async def test_received_records_are_capped_oldest_first(make_backend: MakeBackend) -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    async with make_backend(unread_limit=2) as backend, make_backend() as store:
        for n, task_id in enumerate(ids):
            await backend.expect(task_id)
            await store.store(meta(task_id, result=n))
            kept = dataclasses.replace(IDLE, received=min(n + 1, 2))
            await wait_for(lambda: backend.statistics() == kept)  # noqa: B023  # awaited in this iteration
        # The oldest record was dropped: its wait subscribes and reads the key instead.
        assert [(await backend.wait(task_id, timeout=5))["result"] for task_id in ids] == [0, 1, 2]
        assert backend.statistics().received == 0


async def test_forget_drops_a_received_record(backend: RedisBackend, make_backend: MakeBackend) -> None:
    task_id = str(uuid.uuid4())
    await backend.expect(task_id)
    async with make_backend() as store:
        await store.store(meta(task_id, result=1))
    await wait_for(lambda: backend.statistics().received == 1, timeout=10)
    await backend.forget(task_id)
    assert backend.statistics().received == 0
    assert (await backend.get_meta(task_id))["status"] == "PENDING"


async def test_setting_turns_send_time_subscriptions_off(
    redis_url: str, redis_prefix: str, raw: aioredis.Redis, queue_name: str
) -> None:
    app = make_app(redis_url, redis_prefix, result_subscribe_on_send=False)
    try:
        result = await app.asend_task("tests.nothing", queue=queue_name)
        assert await numsub(raw, f"{redis_prefix}celery-task-meta-{result.id}") == 0
        backend = await redis_backend(app)
        assert backend.statistics().pending == 0
        await backend.store(meta(result.id, result="late"))
        assert await result.aget(timeout=5) == "late"  # subscribe-on-get, as before
    finally:
        await app.aclose()


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="result_subscribe_on_send"):
        App("x", result_subscribe_on_send="yes")
    with pytest.raises(ConfigurationError, match="result_subscribe_max_unread"):
        App("x", result_subscribe_max_unread=1.5)
    assert App("x").conf.result_subscribe_on_send is True
    assert App("x").conf.result_subscribe_max_unread == 1000


# -- failures ------------------------------------------------------------------------------------------------


async def test_send_time_subscription_survives_a_killed_pubsub_connection(
    backend: RedisBackend, make_backend: MakeBackend, raw: aioredis.Redis, client_name: str, redis_prefix: str
) -> None:
    task_id = str(uuid.uuid4())
    channel = f"{redis_prefix}celery-task-meta-{task_id}"
    await backend.expect(task_id)
    assert await numsub(raw, channel) == 1
    killed = 0
    for entry in await raw.client_list(_type="pubsub"):
        if entry.get("name") == client_name:
            killed += await raw.client_kill_filter(_id=entry["id"])
    assert killed == 1
    async with make_backend() as store:
        await store.store(meta(task_id, result="while down"))  # possibly before the re-subscription
    await wait_for(lambda: backend.statistics().received == 1, timeout=15)  # the catch-up read found it
    assert (await backend.wait(task_id, timeout=5))["result"] == "while down"


async def test_cancelled_wait_after_a_send_time_subscription(
    backend: RedisBackend, make_backend: MakeBackend, raw: aioredis.Redis, redis_prefix: str
) -> None:
    task_id = str(uuid.uuid4())
    channel = f"{redis_prefix}celery-task-meta-{task_id}"
    await backend.expect(task_id)
    waiting = asyncio.ensure_future(backend.wait(task_id, timeout=30))
    await wait_for(lambda: backend.statistics().waiting == 1, timeout=10)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await wait_for(lambda: unsubscribed(raw, channel), timeout=10)
    assert backend.statistics() == IDLE
    async with make_backend() as store:
        await store.store(meta(task_id, result="after"))
    assert (await backend.wait(task_id, timeout=5))["result"] == "after"  # the ordinary path


async def test_unreachable_result_store_does_not_stop_the_send(
    redis_url: str, redis_prefix: str, raw: aioredis.Redis, queue_name: str
) -> None:
    app = make_app(redis_url, redis_prefix, backend="redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        await app.asend_task("tests.nothing", queue=queue_name)
        assert await raw.llen(f"{redis_prefix}{queue_name}") == 1
    finally:
        await app.aclose()
