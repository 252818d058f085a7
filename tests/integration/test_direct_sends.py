"""Sync sends from the caller's own thread (`celeriac.app.direct`) on a real Redis: what they send, which sends
take that path, and what happens when the link breaks or Redis goes away."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import hiredis
import pytest
import redis

from celeriac import App, signals
from celeriac._portal import portal
from celeriac._redis.blocking import BlockingLink
from celeriac.errors import BackendError, ConnectionLost
from celeriac.protocol.codec import decode_task
from celeriac.transports.redis import envelope
from tcp_proxy import TcpProxy
from threaded_sends import portal_publishers, send_from_threads

JSON_ONLY = frozenset({"application/json"})


def make_app(url: str, prefix: str, client_name: str) -> App:
    return App(
        "direct",
        broker=url,
        backend=url,
        broker_transport_options={"global_keyprefix": prefix, "client_name": client_name},
        result_backend_transport_options={"global_keyprefix": prefix},
    )


def queued(url: str, prefix: str, queue: str = "celery") -> list[Any]:
    """The task messages waiting in ``queue``, oldest first."""
    client = redis.Redis.from_url(url)
    try:
        raw = client.lrange(prefix + queue, 0, -1)
    finally:
        client.close()
    return [decode_task(envelope.decode(item).message, JSON_ONLY) for item in reversed(raw)]


@pytest.fixture
def app(redis_url: str, prefix: str, client_name: str) -> Iterator[App]:
    made = make_app(redis_url, prefix, client_name)
    yield made
    made.close()


def test_sync_sends_go_out_from_each_callers_thread_and_arrive_whole(app: App, redis_url: str, prefix: str) -> None:
    _, sent, count = send_from_threads(app)
    assert count == 3  # one blocking publisher per sending thread
    messages = queued(redis_url, prefix) + queued(redis_url, prefix, "celery\x06\x163")
    assert {m.id: (m.args[0], m.kwargs.get("y", 0)) for m in messages} == sent
    assert {m.priority for m in messages} == {0, 3}
    assert all(m.task == "d.add" and m.root_id == m.id and m.origin == app.origin for m in messages)


def test_a_killed_link_is_replaced_and_the_send_made_again(
    app: App, redis_url: str, prefix: str, client_name: str
) -> None:
    task = app.task(name="d.noop", ignore_result=True)(lambda: None)
    task.delay()
    task.delay()  # the direct path's link is open now
    (publisher,) = portal_publishers(app)
    host, port = publisher._link._socket.getsockname()[:2]  # type: ignore[attr-defined]
    client = redis.Redis.from_url(redis_url)
    try:  # that one connection only: the server is shared with other test runs
        assert client.client_kill_filter(_id=None, addr=f"{host}:{port}") == 1
    finally:
        client.close()
    task.delay()
    assert publisher._link.retries == 1  # type: ignore[attr-defined]
    assert len(queued(redis_url, prefix)) == 3


def test_redis_gone_is_a_connection_error_and_its_return_is_used(redis_url: str, prefix: str, client_name: str) -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = TcpProxy("127.0.0.1", int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(10)
    database = redis_url.rsplit("/", 1)[1]
    app = make_app(f"redis://127.0.0.1:{proxy.port}/{database}", prefix, client_name)
    try:
        task = app.task(name="d.noop", ignore_result=True)(lambda: None)
        task.delay()
        task.delay()
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(10)
        with pytest.raises(ConnectionLost):
            task.delay()
        asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(10)  # the same port again
        task.delay()
        assert len(queued(redis_url, prefix)) == 3
    finally:
        app.close()
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_sends_that_need_the_loop_still_take_it(app: App, redis_url: str, prefix: str) -> None:
    seen: list[str] = []

    def announced(sender: Any = None, headers: Any = None, **_: Any) -> None:
        seen.append(headers["id"])

    task = app.task(name="d.noop", ignore_result=True)(lambda: None)
    task.delay()
    signals.before_task_publish.connect(announced)
    try:
        ids = [task.delay().id for _ in range(3)]
    finally:
        signals.before_task_publish.disconnect(announced)
    assert seen == ids  # the signal's receiver ran for each: the loop's path
    assert portal_publishers(app) == []
    task.apply_async(queue="elsewhere")  # a queue not declared yet: through the loop, which declares it
    assert portal_publishers(app) == []
    assert len(queued(redis_url, prefix)) == 4 and len(queued(redis_url, prefix, "elsewhere")) == 1


def test_a_reply_that_never_comes_times_out(redis_url: str, prefix: str) -> None:
    link = BlockingLink(redis_url, {"socket_timeout": 0.3}, "redis")
    try:
        assert link.round_trip(hiredis.pack_command(("PING",))) == [b"PONG"]
        sock = link._socket
        assert sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        started = time.monotonic()
        with pytest.raises(ConnectionLost):  # BLPOP of an empty list with no timeout: Redis never answers
            link.round_trip(hiredis.pack_command(("BLPOP", f"{prefix}never", "0")))
        assert time.monotonic() - started < 10
        assert link.retries == 1  # sent again once on a fresh connection, which timed out too
        assert link.round_trip(hiredis.pack_command(("PING",))) == [b"PONG"]  # a fresh connection serves again
    finally:
        link.close()


async def test_aclose_also_closes_what_sync_calls_opened(redis_url: str, prefix: str, client_name: str) -> None:
    app = make_app(redis_url, prefix, client_name)
    task = app.task(name="d.noop", ignore_result=True)(lambda: None)
    await asyncio.to_thread(task.delay)  # a sync call: the portal loop connects for this app
    assert app._resources.opened_on(portal.loop())
    await app.aclose()
    assert not app._resources.opened_on(portal.loop())
    assert len(queued(redis_url, prefix)) == 1


async def test_aclose_while_connecting_closes_what_then_connects(redis_url: str, prefix: str, client_name: str) -> None:
    app = make_app(redis_url, prefix, client_name)
    connecting = asyncio.ensure_future(app.abackend())
    await asyncio.sleep(0)  # its connection is being opened
    await app.aclose()
    backend = await connecting
    with pytest.raises(BackendError, match="is closed"):
        await backend.get_meta("any")
