"""Events without a broker: dispatcher stamping, batching and buffering; reading bodies; the cluster ClusterState."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from celeriac.errors import ConnectionLost, ProtocolError
from celeriac.events.cluster import ClusterState
from celeriac.events.dispatcher import EventDispatcher, event_message
from celeriac.events.model import group_of, routing_key_of
from celeriac.events.receiver import events_in
from celeriac.protocol.clock import LamportClock
from celeriac.protocol.message import Message
from celeriac.protocol.serializers import normalize_accept
from celeriac.testing import wait_for

JSON = normalize_accept(["json"])


class Recorder:
    """Stands in for a transport: records fanouts; ``down`` makes them fail as a lost link does."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, dict[str, Any]]] = []
        self.down = False

    async def fanout(self, channel: str, message: Message) -> None:
        if self.down:
            raise ConnectionLost("broker down")
        self.sent.append((channel, json.loads(message.body), dict(message.headers)))


def test_names() -> None:
    assert routing_key_of("worker-heartbeat") == "worker.heartbeat"
    assert group_of("task-succeeded") == "task" and group_of("worker-online") == "worker"


async def test_events_are_stamped_and_worker_events_go_singly() -> None:
    clock = LamportClock(41)
    recorder = Recorder()
    dispatcher = EventDispatcher("w1@host", clock)
    dispatcher.attach(recorder)  # type: ignore[arg-type]
    event = dispatcher.send("worker-online", freq=2.0)
    assert event is not None and event["clock"] == 42 and event["hostname"] == "w1@host"
    assert list(event)[:4] == ["hostname", "utcoffset", "pid", "clock"] and list(event)[-2:] == ["timestamp", "type"]
    dispatcher.send("worker-heartbeat", freq=2.0)
    await wait_for(lambda: len(recorder.sent) == 2)
    assert [channel for channel, _, _ in recorder.sent] == ["celeryev/worker.online", "celeryev/worker.heartbeat"]
    assert recorder.sent[0][2] == {"hostname": "w1@host"}
    assert recorder.sent[0][1]["type"] == "worker-online"
    await dispatcher.detach()


async def test_task_events_of_one_tick_are_one_task_multi_array_of_at_most_batch_size() -> None:
    recorder = Recorder()
    dispatcher = EventDispatcher("w1@host", LamportClock(), batch_size=24)
    dispatcher.attach(recorder)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    for n in range(30):
        dispatcher.send("task-received", uuid=str(n))
    await wait_for(lambda: dispatcher.statistics().sent == 30)
    assert [(channel, len(body)) for channel, body, _ in recorder.sent] == [
        ("celeryev/task.multi", 24),
        ("celeryev/task.multi", 6),
    ]
    assert [event["uuid"] for _, body, _ in recorder.sent for event in body] == [str(n) for n in range(30)]
    await dispatcher.detach()


async def test_disabled_groups_send_nothing_and_can_be_switched() -> None:
    recorder = Recorder()
    dispatcher = EventDispatcher("w", LamportClock(), groups={"worker"})
    assert dispatcher.send("task-started", uuid="x") is None
    assert dispatcher.enable("task") and not dispatcher.enable("task")
    assert dispatcher.send("task-started", uuid="x") is not None
    assert dispatcher.disable("task") and not dispatcher.disable("task")
    everything = EventDispatcher("w", LamportClock())
    assert everything.disable("task") and everything.groups == frozenset({"worker"})
    assert recorder.sent == []


async def test_buffer_while_down_drops_the_oldest_and_flushes_after_reattach() -> None:
    recorder = Recorder()
    dispatcher = EventDispatcher("w", LamportClock(), buffer_limit=5)
    for n in range(8):  # no transport yet: all buffered, the 3 oldest dropped
        dispatcher.send("worker-heartbeat", n=n)
    assert dispatcher.statistics().buffered == 5 and dispatcher.dropped == 3
    recorder.down = True
    dispatcher.attach(recorder)  # type: ignore[arg-type]
    with pytest.raises(ConnectionLost):
        await dispatcher.flush()
    assert dispatcher.statistics().buffered == 5  # a failed publish keeps the events, in order
    await dispatcher.detach()
    recorder.down = False
    dispatcher.attach(recorder)  # type: ignore[arg-type]
    await wait_for(lambda: dispatcher.statistics().buffered == 0)
    assert [body["n"] for _, body, _ in recorder.sent] == [3, 4, 5, 6, 7]
    await dispatcher.detach()


async def test_detach_flushes_within_its_timeout() -> None:
    recorder = Recorder()
    dispatcher = EventDispatcher("w", LamportClock())
    dispatcher.attach(recorder)  # type: ignore[arg-type]
    dispatcher.send("worker-offline")
    await dispatcher.detach(flush_timeout=2.0)
    assert [body["type"] for _, body, _ in recorder.sent] == ["worker-offline"]


def test_events_in_accepts_objects_and_arrays_and_fills_hostname() -> None:
    one = event_message({"type": "worker-online"}, "w1@host")
    assert events_in(one, JSON) == [{"type": "worker-online", "hostname": "w1@host"}]
    many = event_message([{"type": "task-started", "hostname": "w2@h"}, {"type": "task-succeeded"}], "w1@host")
    assert [e["hostname"] for e in events_in(many, JSON)] == ["w2@h", "w1@host"]
    with pytest.raises(ProtocolError):
        events_in(Message(body=b"[1, 2]"), JSON)
    with pytest.raises(ProtocolError):
        events_in(Message(body=b"{not json"), JSON)


def test_state_tracks_workers_by_heartbeat() -> None:
    state = ClusterState()
    state.event({"type": "worker-online", "hostname": "a", "freq": 1.0, "local_received": 100.0, "active": 2})
    a = state.workers["a"]
    assert a.alive(now=101.9) and not a.alive(now=102.1)  # gone after 2 x freq
    assert a.active == 2 and state.alive_workers(now=101.0) == [a]
    state.event({"type": "worker-heartbeat", "hostname": "a", "freq": 1.0, "local_received": 102.0})
    assert a.alive(now=103.0)
    state.event({"type": "worker-offline", "hostname": "a", "local_received": 102.5})
    assert not a.alive(now=102.6)


def test_state_tracks_tasks_and_merges_out_of_order_events() -> None:
    state = ClusterState(max_tasks=2)
    received = {
        "type": "task-received",
        "uuid": "t1",
        "name": "tasks.add",
        "args": "(1,)",
        "timestamp": 1.0,
        "hostname": "w",
        "local_received": 10.0,
    }
    state.event({"type": "task-succeeded", "uuid": "t1", "result": "3", "timestamp": 3.0, "local_received": 10.0})
    state.event({"type": "task-started", "uuid": "t1", "timestamp": 2.0, "local_received": 10.0})
    state.event(received)
    task = state.tasks["t1"]
    assert task.state == "SUCCESS" and task.name == "tasks.add" and task.fields["result"] == "3"
    assert state.throughput(window=10.0, now=15.0) == pytest.approx(0.1)
    assert state.task_rates(window=10.0, now=15.0) == {"?": pytest.approx(0.1)}  # name came after success
    for n in range(3):
        state.event({"type": "task-received", "uuid": f"x{n}", "timestamp": 1.0})
    assert list(state.tasks) == ["x1", "x2"]  # only the newest max_tasks
    assert [t.uuid for t in state.tasks_in("RECEIVED")] == ["x1", "x2"]


def test_the_live_view_shows_workers_and_task_rates() -> None:
    from rich.console import Console

    from celeriac.cli.events import render

    state = ClusterState()
    state.event(
        {
            "type": "worker-heartbeat",
            "hostname": "w1@host",
            "freq": 2.0,
            "local_received": 100.0,
            "active": 1,
            "processed": 7,
            "loadavg": [0.5, 0.25, 0.0],
        }
    )
    state.event({"type": "task-received", "uuid": "t", "name": "tasks.add", "local_received": 100.0})
    state.event({"type": "task-succeeded", "uuid": "t", "local_received": 100.0, "timestamp": 1.0})
    console = Console(record=True, width=120)
    console.print(render(state, now=101.0))
    text = console.export_text()
    assert "w1@host" in text and "online" in text and "0.50 0.25 0.00" in text and "1.0s ago" in text
    assert "tasks.add" in text and "0.10" in text and "succeeded: 1" in text
