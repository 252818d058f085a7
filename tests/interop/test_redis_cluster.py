# Celery and kombu have no type hints; calling them is the point of this module.
# mypy: disallow-untyped-calls=False
"""celeriac workers and real Celery 5.7 in one Redis database: Celery's CLI inspects and controls a celeriac
worker, Celery's event receiver reads a celeriac worker's events, celeriac's CLI and gossip see a Celery worker,
and a revoke sent by Celery's client stops a task queued for a celeriac worker.

Both sides use one ``global_keyprefix`` (unique per test), so the tests see only their own keys and fanout
channels; every key under it is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery  # type: ignore[import-untyped]
from kombu.connection import Connection

from celeriac import App
from celeriac.testing import start_worker, wait_for
from celeriac.worker.consumer.gossip import Gossip

pytestmark = pytest.mark.redis
BIN = Path(sys.executable).parent

APP_MODULE = """
import os
import time

from {lib} import {cls}

url, prefix = os.environ["TEST_BROKER"], os.environ["TEST_PREFIX"]
app = {cls}("interop", broker=url, backend=url, broker_transport_options={{"global_keyprefix": prefix}},
            result_backend_transport_options={{"global_keyprefix": prefix}})


@app.task(name="interop.add")
def add(x, y):
    return x + y
"""


@pytest.fixture
def modules(tmp_path: Path, redis_url: str, prefix: str) -> dict[str, str]:
    """Environment for the CLIs: ``celery -A celery_side`` and ``celeriac -A celeriac_side`` share the broker."""
    (tmp_path / "celery_side.py").write_text(APP_MODULE.format(lib="celery", cls="Celery"))
    (tmp_path / "celeriac_side.py").write_text(APP_MODULE.format(lib="celeriac", cls="App"))
    return {**os.environ, "PYTHONPATH": str(tmp_path), "TEST_BROKER": redis_url, "TEST_PREFIX": prefix}


@pytest.fixture
def app(redis_url: str, prefix: str) -> App:
    """The celeriac side, in this process."""
    app = App(
        "interop",
        broker=redis_url,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
    )

    @app.task(name="interop.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


@pytest.fixture
def celery_app(redis_url: str, prefix: str) -> Iterator[Celery]:
    app = Celery(
        "interop",
        broker=redis_url,
        backend=redis_url,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
    )
    yield app
    app.close()


async def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``celery``/``celeriac`` in a thread (the in-process worker keeps serving meanwhile)."""
    return await asyncio.to_thread(
        subprocess.run, list(args), env=env, cwd=env["PYTHONPATH"], capture_output=True, text=True, timeout=60
    )


def celery_cli(*args: str) -> list[str]:
    return [str(BIN / "celery"), "-A", "celery_side", *args]


def celeriac_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "celeriac", "-A", "celeriac_side", *args]


async def test_celery_cli_inspects_and_controls_a_celeriac_worker(app: App, modules: dict[str, str]) -> None:
    release = asyncio.Event()

    @app.task(name="interop.hold")
    async def hold() -> str:
        await release.wait()
        return "held"

    async with start_worker(app, hostname="cw@itest", concurrency=1) as worker:
        try:
            running = await hold.adelay()
            queued = await app.asend_task("interop.add", (1, 2))
            await wait_for(lambda: running.id in worker.state.active and queued.id in worker.state.reserved)
            destination = ("-d", "cw@itest", "--json")
            ping, stats, registered, active, revoke, rate = await asyncio.gather(
                run_cli(modules, *celery_cli("inspect", "ping", *destination)),
                run_cli(modules, *celery_cli("inspect", "stats", *destination)),
                run_cli(modules, *celery_cli("inspect", "registered", *destination)),
                run_cli(modules, *celery_cli("inspect", "active", *destination)),
                run_cli(modules, *celery_cli("control", "revoke", queued.id, *destination)),
                run_cli(modules, *celery_cli("control", "rate_limit", "interop.add", "10/m", *destination)),
            )
        finally:
            release.set()
        for done in (ping, stats, registered, active, revoke, rate):
            assert done.returncode == 0, done.stderr
        assert json.loads(ping.stdout) == {"cw@itest": {"ok": "pong"}}
        reply = json.loads(stats.stdout)["cw@itest"]
        assert reply["pool"]["max-concurrency"] == 1 and reply["broker"]["transport"] == "redis"
        names = json.loads(registered.stdout)["cw@itest"]  # (rate_limit may have been set first: "[rate_limit=...]")
        assert [name.split(" ")[0] for name in names] == ["interop.add", "interop.hold"]
        (info,) = json.loads(active.stdout)["cw@itest"]
        assert info["id"] == running.id and info["type"] == "interop.hold"
        # (celery control --json prints the list of replies; celery inspect --json one merged object)
        assert json.loads(revoke.stdout) == [{"cw@itest": {"ok": f"tasks {{'{queued.id}'}} flagged as revoked"}}]
        assert json.loads(rate.stdout) == [{"cw@itest": {"ok": "new rate limit set successfully"}}]
        assert app.tasks["interop.add"].rate_limit == "10/m"
        assert await running.aget(timeout=10) == "held"
        await wait_for(lambda: _state_is(queued, "REVOKED"), timeout=10)
    await app.aclose()


async def _state_is(result: Any, state: str) -> bool:
    return bool(await result.astate() == state)


async def test_celery_event_receiver_sees_heartbeats_and_task_events(
    app: App, celery_app: Celery, redis_url: str, prefix: str
) -> None:
    seen: list[dict[str, Any]] = []
    ready = threading.Event()

    def receive() -> None:
        with Connection(redis_url, transport_options={"global_keyprefix": prefix}) as connection:
            receiver = celery_app.events.Receiver(connection, handlers={"*": on_event})

            def stop_when_done() -> None:
                types = {e["type"] for e in seen}
                receiver.should_stop = {"worker-heartbeat", "task-succeeded"} <= types

            def on_event_and_check(event: dict[str, Any]) -> None:
                seen.append(event)
                stop_when_done()

            receiver.handlers = {"*": on_event_and_check}
            ready.set()
            receiver.capture(limit=None, timeout=20, wakeup=True)

    def on_event(event: dict[str, Any]) -> None:  # replaced above once the receiver exists
        seen.append(event)

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    await asyncio.to_thread(ready.wait, 10)
    await asyncio.sleep(0.5)  # let the receiver subscribe before the worker starts sending
    async with start_worker(
        app, hostname="ev@itest", send_events=True, without_heartbeat=False, heartbeat_interval=0.2
    ):
        result = await app.asend_task("interop.add", (2, 3))
        assert await result.aget(timeout=10) == 5
        await asyncio.to_thread(thread.join, 20)
    assert not thread.is_alive(), f"Celery's receiver did not see everything: {[e['type'] for e in seen]}"
    beat = next(e for e in seen if e["type"] == "worker-heartbeat")
    assert beat["hostname"] == "ev@itest" and beat["freq"] == 0.2 and "local_received" in beat
    ours = [e["type"] for e in seen if e.get("uuid") == result.id]
    assert ours == ["task-received", "task-started", "task-succeeded"]
    succeeded = next(e for e in seen if e["type"] == "task-succeeded")
    assert succeeded["result"] == "5" and succeeded["hostname"] == "ev@itest"
    state = celery_app.events.State()
    for event in seen:
        state.event(event)
    assert state.tasks[result.id].state == "SUCCESS" and state.tasks[result.id].name == "interop.add"
    assert "ev@itest" in state.workers
    await app.aclose()


async def test_celeriac_sees_a_celery_worker(app: App, modules: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "celery-worker.log"
    joined: list[str] = []
    async with start_worker(
        app, hostname="cx@itest", without_gossip=False, without_heartbeat=False, heartbeat_interval=0.5
    ) as ours:
        ours.consumer.blueprint.get(Gossip).join_callbacks.append(lambda info: joined.append(info.hostname))
        with open(log, "w") as handle:
            celery_worker = subprocess.Popen(
                celery_cli("worker", "-P", "solo", "-n", "cel@itest", "-l", "info", "--without-gossip"),
                env=modules,
                cwd=modules["PYTHONPATH"],
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        try:
            await wait_for(lambda: "cel@itest ready" in log.read_text(), timeout=30)
            assert "mingle: sync with 1 nodes" in log.read_text()  # it said hello and we answered
            ping, status = await asyncio.gather(
                run_cli(modules, *celeriac_cli("inspect", "ping", "-d", "cel@itest", "-t", "5")),
                run_cli(modules, *celeriac_cli("status", "--json")),
            )
            assert ping.returncode == 0, ping.stderr
            assert ping.stdout == "->  cel@itest: OK\n        pong\n\n1 node online.\n"
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout) == {"cel@itest": {"ok": "pong"}, "cx@itest": {"ok": "pong"}}
            await wait_for(lambda: "cel@itest" in joined, timeout=10)  # gossip follows Celery's heartbeats
            stats = await app.control.inspect(destination=["cel@itest"], timeout=5).astats()
            assert stats["cel@itest"]["pool"]["implementation"].startswith("celery.concurrency.solo")
            result = await app.asend_task("interop.add", (4, 4))
            assert await result.aget(timeout=10) == 8  # either worker may run it: both speak the protocol
        finally:
            celery_worker.terminate()
            await asyncio.to_thread(celery_worker.wait, 30)
    await app.aclose()


async def test_a_revoke_from_celerys_client_stops_a_queued_task(app: App, celery_app: Celery) -> None:
    release = asyncio.Event()

    @app.task(name="interop.block")
    async def block() -> None:
        await release.wait()

    async with start_worker(app, hostname="rv@itest", concurrency=1) as worker:
        try:
            blocker = await block.adelay()
            await wait_for(lambda: blocker.id in worker.state.active)
            queued = celery_app.send_task("interop.add", (1, 1))
            await wait_for(lambda: queued.id in worker.state.reserved)
            started = time.monotonic()
            await asyncio.to_thread(celery_app.control.revoke, queued.id)
            await wait_for(lambda: queued.id in worker.state.revoked, timeout=10)
            assert time.monotonic() - started < 5
        finally:
            release.set()
        assert await asyncio.to_thread(lambda: celery_app.AsyncResult(queued.id).get(timeout=10, propagate=False))
        assert celery_app.AsyncResult(queued.id).state == "REVOKED"
    await app.aclose()
