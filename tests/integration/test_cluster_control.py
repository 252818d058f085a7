"""Changing running workers, in this process, over SQLite and Redis: rate and time limits, events on and off,
queues, pool size, shutdown, the state file, and what a worker does with bad control messages."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from celeriac.control import Arg, Kind
from celeriac.control.arguments import as_int
from celeriac.control.pidbox import Mailbox
from celeriac.errors import TimeLimitExceeded
from celeriac.events.receiver import EventReceiver
from celeriac.protocol.message import Message
from celeriac.testing import start_worker, wait_for
from celeriac.worker.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import Broker, reply_of


async def test_rate_limited_task_waits_without_blocking_others_and_limit_changes_at_run_time(broker: Broker) -> None:
    app = broker.app()

    @app.task(rate_limit="1/h")
    def limited(n: int) -> int:
        return n

    @app.task
    def free() -> str:
        return "free"

    async with start_worker(app, hostname="rl@itest", concurrency=2, prefetch_multiplier=1) as worker:
        first, second, third = [await limited.adelay(n) for n in range(3)]
        assert await first.aget(timeout=10) == 0  # the bucket starts with one token
        await wait_for(lambda: len(worker.state.reserved) == 2)  # the others wait, out of the way
        others = [await free.adelay() for _ in range(4)]  # prefetch is 2, yet these all get through
        assert [await r.aget(timeout=10) for r in others] == ["free"] * 4
        assert await second.astate() == "PENDING"
        reserved = reply_of(await app.control.inspect(destination=["rl@itest"], timeout=5).areserved(), "rl@itest")
        assert {r["id"] for r in reserved} == {second.id, third.id}
        replies = await app.control.arate_limit(limited.name, "50/s", reply=True, timeout=5, destination=["rl@itest"])
        assert replies == [{"rl@itest": {"ok": "new rate limit set successfully"}}]
        assert [await second.aget(timeout=10), await third.aget(timeout=10)] == [1, 2]
        assert limited.rate_limit == "50/s"
    await app.aclose()


async def test_time_limit_changes_at_run_time(broker: Broker) -> None:
    app = broker.app()

    @app.task
    async def nap(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    async with start_worker(app, hostname="tl@itest"):
        assert await (await nap.adelay(0.01)).aget(timeout=10) == 0.01
        answer = await app.control.abroadcast(
            "time_limit", {"task_name": nap.name, "hard": 0.05}, reply=True, timeout=5, destination=["tl@itest"]
        )
        assert answer == [{"tl@itest": {"ok": "time limits set successfully"}}]
        result = await nap.adelay(5)
        try:
            await result.aget(timeout=10)
        except TimeLimitExceeded:
            pass
        else:
            raise AssertionError("the new time limit did not apply")
    await app.aclose()


async def test_events_reach_a_receiver_and_task_events_can_be_switched_on(broker: Broker) -> None:
    app = broker.app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    transport = app.make_transport()
    async with transport, EventReceiver(transport) as receiver:
        seen: list[dict[str, Any]] = []

        async def collect() -> None:
            async for event in receiver:
                seen.append(event)

        collector = asyncio.create_task(collect())
        async with start_worker(app, hostname="ev@itest", without_heartbeat=False, heartbeat_interval=0.2) as worker:
            await wait_for(lambda: {"worker-online", "worker-heartbeat"} <= {e["type"] for e in seen})
            online = next(e for e in seen if e["type"] == "worker-online")
            assert online["hostname"] == "ev@itest" and online["freq"] == 0.2 and online["sw_ident"] == "py-celeriac"
            assert {"active", "processed", "loadavg", "clock", "pid", "utcoffset", "local_received"} <= set(online)
            quiet = await add.adelay(1, 1)
            assert await quiet.aget(timeout=10) == 2  # no -E: no task events
            # The result is stored before the worker's listeners hear of the task: wait until they have, so that
            # switching events on next cannot catch the quiet task's own end.
            await wait_for(lambda: worker.state.processed == 1)
            answer = await app.control.abroadcast("enable_events", reply=True, timeout=5, destination=["ev@itest"])
            assert answer == [{"ev@itest": {"ok": "task events enabled"}}]
            result = await add.adelay(2, 3)
            assert await result.aget(timeout=10) == 5

            def task_events() -> dict[str, dict[str, Any]]:
                return {e["type"]: e for e in seen if e.get("uuid") == result.id}

            await wait_for(lambda: "task-succeeded" in task_events())
            events = task_events()
            assert list(events) == ["task-received", "task-started", "task-succeeded"]
            received = events["task-received"]
            assert (received["name"], received["args"], received["kwargs"], received["retries"]) == (
                add.name,
                "(2, 3)",
                "{}",
                0,
            )
            assert events["task-succeeded"]["result"] == "5" and events["task-succeeded"]["runtime"] >= 0
            assert not [e for e in seen if e.get("uuid") == quiet.id]
        await wait_for(lambda: "worker-offline" in {e["type"] for e in seen})
        collector.cancel()
    await app.aclose()


async def test_queues_and_pool_size_change_at_run_time(broker: Broker, queue_name: str) -> None:
    app = broker.app()

    @app.task
    def where() -> str:
        return "ran"

    async with start_worker(app, hostname="q@itest", concurrency=2) as worker:
        control = app.control
        answer = await control.abroadcast(
            "add_consumer", {"queue": queue_name}, reply=True, timeout=5, destination=["q@itest"]
        )
        assert answer == [{"q@itest": {"ok": f"add consumer {queue_name}"}}]
        assert await (await where.aapply_async(queue=queue_name)).aget(timeout=10) == "ran"
        queues = reply_of(await control.inspect(destination=["q@itest"], timeout=5).aactive_queues(), "q@itest")
        assert [q["name"] for q in queues] == ["celery", queue_name]
        assert queues[1]["exchange"]["type"] == "direct" and queues[1]["routing_key"] == queue_name
        answer = await control.abroadcast(
            "cancel_consumer", {"queue": queue_name}, reply=True, timeout=5, destination=["q@itest"]
        )
        assert answer == [{"q@itest": {"ok": f"no longer consuming from {queue_name}"}}]
        assert worker.queues == ["celery"]
        await control.abroadcast("pool_grow", {"n": 3}, reply=True, timeout=5, destination=["q@itest"])
        assert worker.pool.concurrency == 5 and worker.prefetch_count == 20
        await control.abroadcast("pool_shrink", {"n": 4}, reply=True, timeout=5, destination=["q@itest"])
        assert worker.pool.concurrency == 1
        stats = reply_of(await control.inspect(destination=["q@itest"], timeout=5).astats(), "q@itest")
        assert stats["pool"]["max-concurrency"] == 1 and stats["prefetch_count"] == 4
        assert await (await where.adelay()).aget(timeout=10) == "ran"
    await app.aclose()


async def test_bad_control_messages_are_dropped_and_the_worker_keeps_answering(broker: Broker) -> None:
    app = broker.app()
    async with start_worker(app, hostname="bad@itest"):
        transport = await app.atransport()
        for body in (b"not json", b"[1, 2]", b'{"method": 5}', b'{"method": "ping", "arguments": "x"}'):
            await transport.fanout("celery.pidbox", Message(body=body))
        mailbox = Mailbox(transport)
        assert await mailbox.call("no_such_command", reply=True, timeout=5, destination=["bad@itest"]) == [
            {"bad@itest": {"error": "KeyError('no_such_command')"}}
        ]
        assert await mailbox.call(
            "revoke", {"task_id": "x", "terminate": "maybe"}, reply=True, timeout=5, destination=["bad@itest"]
        ) == [{"bad@itest": {"error": "ValueError(\"not a true/false value: 'maybe'\")"}}]
        assert await app.control.aping(destination=["bad@itest"], timeout=5) == [{"bad@itest": {"ok": "pong"}}]
    await app.aclose()


async def test_remote_control_can_be_disabled_and_shutdown_stops_a_worker(broker: Broker) -> None:
    app = broker.app(worker_enable_remote_control=False)
    async with start_worker(app, hostname="deaf@itest"):
        assert await app.control.aping(destination=["deaf@itest"], timeout=0.3) == []
    await app.aclose()
    app = broker.app()
    worker = Worker(app, hostname="bye@itest", without_mingle=True)
    running = asyncio.create_task(worker.run(install_signal_handlers=False))
    await worker.wait_started()
    assert await app.control.abroadcast("shutdown", destination=["bye@itest"]) == []
    assert await asyncio.wait_for(running, 10) == 0
    await app.aclose()


async def test_statedb_keeps_revoked_ids_across_a_restart(broker: Broker, tmp_path: Path) -> None:
    app = broker.app()
    ran: list[int] = []

    @app.task
    def work(n: int) -> int:
        ran.append(n)
        return n

    path = str(tmp_path / "worker.state")
    async with start_worker(app, hostname="db@itest", statedb=path) as worker:
        await app.control.arevoke("doomed-id", reply=True, timeout=5, destination=["db@itest"])
        clock = worker.state.clock.value
    assert Path(path).exists()
    async with start_worker(app, hostname="db@itest", statedb=path) as worker:
        assert "doomed-id" in worker.state.revoked and worker.state.clock.value >= clock
        doomed = await work.aapply_async((1,), task_id="doomed-id")
        fine = await work.adelay(2)
        assert await fine.aget(timeout=10) == 2
        await wait_for(lambda: _revoked(doomed), timeout=10)
    assert ran == [2]
    await app.aclose()


async def _revoked(result: Any) -> bool:
    return bool(await result.astate() == "REVOKED")


async def test_ping_round_trip_is_quick(broker: Broker) -> None:
    app = broker.app()
    async with start_worker(app, hostname="fast@itest"):
        started = time.monotonic()
        for _ in range(5):
            assert await app.control.aping(destination=["fast@itest"], timeout=5) == [{"fast@itest": {"ok": "pong"}}]
        assert time.monotonic() - started < 5  # no reply waits out its timeout when a limit is known
    await app.aclose()


async def test_a_command_registered_on_the_app_is_answered_by_its_worker(broker: Broker) -> None:
    app = broker.app()
    other = broker.app("other")

    @app.control_commands.register(Kind.CONTROL, Arg("n", as_int), reply="{'ok': 'bumped by <n>'}")
    async def bump(node: Any, n: int = 1) -> dict[str, str]:
        return {"ok": f"bumped {node.hostname} by {n}"}

    assert app.control_commands.get("ping") is not None  # the built-ins are there too
    assert other.control_commands.get("bump") is None  # one app's commands never reach another
    async with start_worker(app, hostname="user@itest"):
        replies = await app.control.abroadcast("bump", {"n": "2"}, reply=True, timeout=5, destination=["user@itest"])
        assert replies == [{"user@itest": {"ok": "bumped user@itest by 2"}}]
        assert await app.control.aping(destination=["user@itest"], timeout=5) == [{"user@itest": {"ok": "pong"}}]
    await app.aclose()
