"""Workers in a cluster, in this process, over SQLite and Redis: inspect, control, revoke, mingle, gossip, events,
rate limits and the state file."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from celeriac.events.receiver import EventReceiver
from celeriac.testing import start_worker, wait_for
from celeriac.worker.consumer.gossip import Gossip
from celeriac.worker.consumer.mingle import Mingle

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import CLUSTER, Broker, reply_of


async def test_inspect_ping_stats_registered_active(broker: Broker) -> None:
    app = broker.app()
    release = asyncio.Event()

    @app.task
    async def hold(tag: str) -> str:
        await release.wait()
        return tag

    async with start_worker(app, hostname="w1@itest"), start_worker(app, hostname="w2@itest", concurrency=3):
        inspect = app.control.inspect(destination=["w1@itest", "w2@itest"], timeout=5)
        assert await inspect.aping() == {"w1@itest": {"ok": "pong"}, "w2@itest": {"ok": "pong"}}
        stats = reply_of(await inspect.astats(), "w2@itest")
        assert stats["pool"]["max-concurrency"] == 3 and stats["prefetch_count"] == 12
        assert isinstance(stats["clock"], str) and stats["broker"]["transport"] == broker.kind
        assert reply_of(await inspect.aregistered(), "w1@itest") == [hold.name]
        result = await hold.adelay("x")
        active: dict[str, Any] = {}

        async def running() -> bool:
            active.update(await inspect.aactive())
            return any(active.values())

        await wait_for(running, timeout=10)
        (info,) = [entry for entries in active.values() for entry in entries]
        assert info["id"] == result.id and info["args"] == ["x"] and info["acknowledged"] is True
        assert info["delivery_info"]["routing_key"] == "celery" and info["time_start"] is not None
        where = await app.control.inspect(timeout=5, destination=["w1@itest", "w2@itest"]).aquery_task(result.id)
        assert [value[result.id][0] for value in where.values() if value] == ["active"]
        release.set()
        assert await result.aget(timeout=10) == "x"
    await app.aclose()


async def test_commands_are_answered_while_every_pool_slot_is_busy(broker: Broker) -> None:
    app = broker.app()
    gate = threading.Event()

    @app.task
    def block() -> str:  # a sync body: it runs in a pool thread and never yields to the loop
        gate.wait(30)
        return "done"

    async with start_worker(app, hostname="busy@itest", concurrency=2) as worker:
        results = [await block.adelay() for _ in range(3)]
        await wait_for(lambda: len(worker.state.active) == 2 and len(worker.state.reserved) == 1)
        inspect = app.control.inspect(destination=["busy@itest"], timeout=5)
        started = time.monotonic()
        assert await inspect.aping() == {"busy@itest": {"ok": "pong"}}
        assert time.monotonic() - started < 2.0
        assert len(reply_of(await inspect.aactive(), "busy@itest")) == 2
        assert [r["id"] for r in reply_of(await inspect.areserved(), "busy@itest")] == [results[2].id]
        gate.set()
        assert [await r.aget(timeout=10) for r in results] == ["done"] * 3
    await app.aclose()


async def test_revoke_drops_a_queued_task_and_an_eta_task(broker: Broker) -> None:
    app = broker.app()
    release = asyncio.Event()
    ran: list[str] = []

    @app.task
    async def first() -> None:
        await release.wait()

    @app.task
    def record(tag: str) -> str:
        ran.append(tag)
        return tag

    async with start_worker(app, hostname="rev@itest", concurrency=1) as worker:
        try:
            blocker = await first.adelay()
            await wait_for(lambda: blocker.id in worker.state.active)
            queued = await record.adelay("queued")  # waits behind the blocker for the only pool slot
            eta = await record.aapply_async(("eta",), countdown=0.8)
            kept = await record.adelay("kept")
            await wait_for(lambda: queued.id in worker.state.reserved)
            if broker.kind == "redis":  # Redis has no delayed delivery: the worker holds ETA tasks itself
                await wait_for(lambda: eta.id in worker.state.scheduled)
                inspect = app.control.inspect(destination=["rev@itest"], timeout=5)
                (entry,) = reply_of(await inspect.ascheduled(), "rev@itest")
                assert entry["priority"] == 6 and entry["request"]["id"] == eta.id and entry["eta"]
            await app.control.arevoke([queued.id, eta.id])
            await wait_for(lambda: queued.id in worker.state.revoked and eta.id in worker.state.revoked)
            assert eta.id not in worker.state.scheduled  # a held ETA request leaves at once
        finally:
            release.set()
        assert await kept.aget(timeout=10) == "kept"
        assert await queued.astate() == "REVOKED"
        await wait_for(lambda: _is_revoked(eta), timeout=10)
        assert ran == ["kept"]
    await app.aclose()


async def _is_revoked(result: Any) -> bool:
    return bool(await result.astate() == "REVOKED")


async def test_revoke_terminate_cancels_a_running_async_task(broker: Broker) -> None:
    app = broker.app(worker_send_task_events=True)

    running = asyncio.Event()

    @app.task
    async def forever() -> None:
        running.set()
        await asyncio.sleep(3600)

    @app.task
    async def quick() -> str:
        return "quick"

    transport = app.make_transport()
    worker_running = start_worker(app, hostname="term@itest", concurrency=1)
    async with transport, EventReceiver(transport) as events, worker_running as worker:
        result = await forever.adelay()
        await asyncio.wait_for(running.wait(), 10)
        replies = await app.control.arevoke(
            result.id, terminate=True, reply=True, timeout=5, destination=["term@itest"]
        )
        assert replies == [{"term@itest": {"ok": f"terminate: {result.id}"}}]
        await wait_for(lambda: result.id not in worker.state.active)
        assert await result.astate() == "REVOKED"
        assert await (await quick.adelay()).aget(timeout=10) == "quick"  # the only pool slot lives on
        async for event in events:
            if event["type"] == "task-revoked":
                assert (event["uuid"], event["terminated"], event["signum"], event["expired"]) == (
                    result.id,
                    True,
                    15,
                    False,
                )
                break
    await app.aclose()


async def test_mingle_merges_revoked_ids_and_clock(broker: Broker) -> None:
    app = broker.app()
    async with start_worker(app, hostname="old@itest") as old:
        await app.control.arevoke("revoked-before", destination=["old@itest"], reply=True, timeout=5)
        assert "revoked-before" in old.state.revoked
        old.state.clock.adjust(500)
        async with start_worker(app, hostname="new@itest", without_mingle=False) as new:
            assert "revoked-before" in new.state.revoked
            assert new.state.clock.value > 500
    await app.aclose()


async def test_gossip_sees_peers_join_leave_and_get_lost(broker: Broker) -> None:
    app = broker.app()
    seen: list[tuple[str, str]] = []
    async with start_worker(app, hostname="g1@itest", **CLUSTER) as g1:
        gossip = g1.consumer.blueprint.get(Gossip)
        gossip.join_callbacks.append(lambda info: seen.append(("join", info.hostname)))
        gossip.leave_callbacks.append(lambda info: seen.append(("leave", info.hostname)))
        gossip.lost_callbacks.append(lambda info: seen.append(("lost", info.hostname)))
        async with start_worker(app, hostname="g2@itest", **CLUSTER):
            await wait_for(lambda: ("join", "g2@itest") in seen)
            assert "g2@itest" in gossip.peers
        await wait_for(lambda: ("leave", "g2@itest") in seen)
        async with start_worker(app, hostname="g3@itest", **CLUSTER):
            await wait_for(lambda: "g3@itest" in gossip.peers)
            gossip.check_lost(now=time.time() + 10)  # as if g3's heartbeats had stopped 10 s ago
            assert ("lost", "g3@itest") in seen and "g3@itest" not in gossip.peers
    await app.aclose()


async def test_election_picks_one_leader_that_all_agree_on(broker: Broker) -> None:
    app = broker.app()
    led: list[str] = []
    async with (
        start_worker(app, hostname="e1@itest", **CLUSTER) as e1,
        start_worker(app, hostname="e2@itest", **CLUSTER) as e2,
    ):
        gossips = {w.hostname: w.consumer.blueprint.get(Gossip) for w in (e1, e2)}
        for hostname, gossip in gossips.items():
            gossip.election_handlers["chores"] = lambda action, me=hostname: led.append(f"{me}:{action}")
        await wait_for(lambda: gossips["e1@itest"].peers == {"e2@itest"} and gossips["e2@itest"].peers == {"e1@itest"})
        await app.control.aelection("vote-1", "chores", "sweep")
        await wait_for(lambda: len(led) == 1)
        await wait_for(lambda: all("vote-1" not in g._requests for g in gossips.values()))  # both decided
        assert len(led) == 1 and led[0].endswith(":sweep")
    await app.aclose()


async def test_mingle_ends_with_the_last_reply_not_the_timeout(broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis (PUBLISH) and SQLite (its listeners table) count who received the hello: with a timeout no test would
    outlive, a lone worker and a worker with one neighbour still start at once, and the neighbour's revoked ids are
    merged."""
    monkeypatch.setattr(Mingle, "timeout", 3600.0)
    app = broker.app()
    async with asyncio.timeout(60):
        async with start_worker(app, hostname="alone@itest", without_mingle=False) as alone:
            await app.control.arevoke("revoked-early", destination=["alone@itest"], reply=True, timeout=5)
            assert "revoked-early" in alone.state.revoked
            async with start_worker(app, hostname="second@itest", without_mingle=False) as second:
                assert "revoked-early" in second.state.revoked
    await app.aclose()
