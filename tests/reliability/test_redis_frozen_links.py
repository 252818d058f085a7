"""Pub/sub links that freeze (bytes stop, no FIN, no RST: a NAT or firewall idle timeout) are replaced (issue 10
item 7): a worker answers remote control again, and a client's ``get()`` still returns its result.

The proxy freezes only the connections that sent SUBSCRIBE/PSUBSCRIBE (the pub/sub links); new connections pass.
``pubsub_ping_interval`` is lowered to 1 s so a frozen link is noticed within ~2 s (the default, 10 s: ~20 s).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from celeriac import App
from celeriac._portal import portal

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "integration"))
from procs import LoggedProcess  # noqa: E402

from tcp_proxy import TcpProxy  # noqa: E402

pytestmark = pytest.mark.redis

APP_MODULE = """
from relapp import app, mark, mark_late  # noqa: F401
import os
app.conf.broker_transport_options = {**app.conf.broker_transport_options, "pubsub_ping_interval": 1.0}
app.conf.result_backend_transport_options = {"global_keyprefix": os.environ["REL_KEYPREFIX"]}
"""


class FreezingProxy(TcpProxy):
    """`TcpProxy` whose links can be frozen: what they read is held back for ever, and nothing is closed."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self._links: list[_Link] = []

    def freeze(self, marker: bytes) -> int:
        """Freeze every open link whose client sent ``marker``; how many. Later links are not affected."""
        frozen = 0
        for link in self._links:
            if marker in link.sent and not link.frozen.is_set():
                link.frozen.set()
                frozen += 1
        return frozen

    async def stop(self) -> None:
        for link in self._links:
            link.released.set()  # frozen copies end; super().stop() aborts every socket
        await super().stop()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        if self._server is None:
            writer.transport.abort()
            upstream_writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        link = _Link()
        self._links.append(link)

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter, record: bool) -> None:
            try:
                while data := await source.read(65536):
                    if record and len(link.sent) < 65536:
                        link.sent += data
                    if link.frozen.is_set():
                        await link.released.wait()  # bytes stop here; the sockets stay open until stop()
                        return
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.transport.abort()
                self._writers.discard(sink)

        await asyncio.gather(copy(reader, upstream_writer, True), copy(upstream_reader, writer, False))


class _Link:
    def __init__(self) -> None:
        self.sent = b""
        self.frozen = asyncio.Event()
        self.released = asyncio.Event()


@pytest.fixture
def proxy(redis_url: str) -> Iterator[FreezingProxy]:
    target = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    server = FreezingProxy(target["host"], target["port"])
    portal.run(server.start())
    yield server
    portal.run(server.stop())


def start_worker(tmp_path: Path, broker: str, backend: str, prefix: str, queue: str) -> LoggedProcess:
    (tmp_path / "frozenapp.py").write_text(APP_MODULE)
    env = {
        **os.environ,
        "CELERIAC_BROKER_URL": broker,
        "CELERIAC_RESULT_BACKEND": backend,
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{HERE}",
        "REL_KEYPREFIX": prefix,
        "REL_LEDGER": str(tmp_path / "ledger"),
    }
    command = [sys.executable, "-m", "celeriac", "-A", "frozenapp", "worker", "-l", "info", "-Q", queue]
    command += ["-n", f"frozen@{queue}", "-P", "threads", "-c", "2"]
    return LoggedProcess(command, tmp_path, env)


def url_of(proxy: FreezingProxy, redis_url: str) -> str:
    db = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs.get("db", 0)
    return f"redis://127.0.0.1:{proxy.port}/{db}"


def test_frozen_control_link_is_replaced(
    redis_url: str, prefix: str, queue_name: str, proxy: FreezingProxy, tmp_path: Path
) -> None:
    worker = start_worker(tmp_path, url_of(proxy, redis_url), redis_url, prefix, queue_name)
    caller = App("caller", broker=redis_url)
    caller.conf.broker_transport_options = {"global_keyprefix": prefix}
    try:
        worker.wait_for_output("ready.", timeout=30)
        assert caller.control.ping(timeout=2.0), "the worker answers before the freeze"
        frozen = portal.run(_freeze(proxy, b"SUBSCRIBE"))
        assert frozen >= 1
        started = time.monotonic()
        replies: object = []
        while not replies and time.monotonic() - started < 30:
            replies = caller.control.ping(timeout=1.0)
        took = time.monotonic() - started
        print(f"\n[frozen control link] froze {frozen} links; ping answered after {took:.1f}s")
        assert replies, f"no ping reply within 30 s of the freeze:\n{worker.output[-3000:]}"
        assert "did not answer a PING" in worker.output
    finally:
        caller.close()
        worker.stop()


def test_frozen_result_link_still_gets_the_result(
    redis_url: str, prefix: str, queue_name: str, proxy: FreezingProxy, tmp_path: Path
) -> None:
    worker = start_worker(tmp_path, redis_url, redis_url, prefix, queue_name)
    client = App("client", broker=redis_url, backend=url_of(proxy, redis_url))
    client.conf.broker_transport_options = {"global_keyprefix": prefix}
    client.conf.result_backend_transport_options = {"global_keyprefix": prefix, "pubsub_ping_interval": 1.0}

    async def scenario() -> tuple[object, float, int]:
        result = await client.asend_task("relapp.mark_late", ["r1", 3.0], queue=queue_name)
        waiting = asyncio.ensure_future(result.aget(timeout=40))
        await asyncio.sleep(1.0)  # the wait is subscribed; the task runs
        frozen = proxy.freeze(b"SUBSCRIBE")
        started = time.monotonic()
        value = await asyncio.wait_for(waiting, 30)
        return value, time.monotonic() - started, frozen

    try:
        worker.wait_for_output("ready.", timeout=30)
        value, took, frozen = portal.run(scenario())
        print(f"\n[frozen result link] froze {frozen} links; get() returned after {took:.1f}s")
        assert frozen >= 1
        assert value == "r1"
    finally:
        client.close()
        worker.stop()


def test_frozen_fetch_link_is_replaced_within_30_s(
    redis_url: str, prefix: str, queue_name: str, proxy: FreezingProxy, tmp_path: Path
) -> None:
    worker = start_worker(tmp_path, url_of(proxy, redis_url), redis_url, prefix, queue_name)
    client = App("client", broker=redis_url, backend=redis_url)
    client.conf.broker_transport_options = {"global_keyprefix": prefix}
    client.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    try:
        worker.wait_for_output("ready.", timeout=30)
        assert client.send_task("relapp.mark", ["before"], queue=queue_name).get(timeout=30) == "before"
        frozen = portal.run(_freeze(proxy, b"BLMOVE"))  # the idle worker's blocking waits
        assert frozen >= 1
        started = time.monotonic()
        value = client.send_task("relapp.mark", ["after"], queue=queue_name).get(timeout=40)
        took = time.monotonic() - started
        print(f"\n[frozen fetch link] froze {frozen} links; the next task ran after {took:.1f}s")
        assert value == "after"
        assert took < 30, f"a frozen fetch link took {took:.1f}s to be replaced:\n{worker.output[-3000:]}"
    finally:
        client.close()
        worker.stop()


async def _freeze(proxy: FreezingProxy, marker: bytes) -> int:
    return proxy.freeze(marker)
