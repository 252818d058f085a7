"""ClusterState: an in-memory view of a cluster built from its events, for monitors (``celeriac events``, gossip).

Feed it every event with `ClusterState.event`. Workers are alive while a heartbeat came within ``2 * freq`` seconds
(celery-wire.md §4.3; ``worker-offline`` ends that at once); tasks are kept by id (the newest ``max_tasks``)
with the state of their latest event, out-of-order events merged by state precedence (§4.4, §6.4);
`throughput` and `task_rates` count tasks finished per second over a recent window.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from celeriac.events.model import TASK_EVENT_STATE, WORKER_OFFLINE, Event, group_of
from celeriac.protocol.states import READY_STATES, State, precedence

HEARTBEAT_EXPIRE = 2.0  # a worker is gone after this many heartbeat intervals without one
# Fields a task takes from task-received only (later events may not change them).
_RECEIVED_FIELDS = ("name", "args", "kwargs", "parent_id", "root_id", "retries", "eta", "expires")
_TASK_FIELDS = ("result", "exception", "traceback", "runtime", "terminated", "signum", "expired", "requeue")


@dataclass
class WorkerInfo:
    """What the events of one worker said last."""

    hostname: str
    freq: float = 2.0
    last_heartbeat: float | None = None  # local time the last online/heartbeat event arrived
    offline: bool = False
    pid: int | None = None
    clock: int | None = None
    active: int | None = None
    processed: int | None = None
    loadavg: list[float] = field(default_factory=list)
    sw_ident: str | None = None
    sw_ver: str | None = None
    sw_sys: str | None = None

    def alive(self, now: float | None = None) -> bool:
        """True while the last heartbeat is younger than ``2 * freq`` and no worker-offline came since."""
        if self.offline or self.last_heartbeat is None:
            return False
        return (time.time() if now is None else now) < self.last_heartbeat + self.freq * HEARTBEAT_EXPIRE


@dataclass
class TaskInfo:
    """What the events of one task said; ``state`` is Celery's state name."""

    uuid: str
    state: str = State.PENDING
    hostname: str | None = None
    timestamp: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str | None:
        """The task name (from task-received or task-sent)."""
        value = self.fields.get("name")
        return str(value) if value is not None else None


class ClusterState:
    """The cluster as its events describe it.

    Args:
        max_tasks: tasks remembered (the oldest are forgotten first).
        window: seconds of finished tasks kept for `throughput`/`task_rates`.
    """

    def __init__(self, max_tasks: int = 10_000, window: float = 60.0) -> None:
        self.workers: dict[str, WorkerInfo] = {}
        self.tasks: OrderedDict[str, TaskInfo] = OrderedDict()
        self.max_tasks = max_tasks
        self.window = window
        self.event_count = 0
        self.task_counts: Counter[str] = Counter()  # task event type -> how many seen
        self._finished: deque[tuple[float, str, str]] = deque()  # (local time, task name, state)

    def event(self, event: Event) -> None:
        """Apply one event (unknown types only count)."""
        self.event_count += 1
        kind = str(event.get("type", ""))
        group = group_of(kind)
        if group == "worker":
            self._worker_event(kind, event)
        elif group == "task" and event.get("uuid"):
            self._task_event(kind, event)

    def _worker_event(self, kind: str, event: Event) -> None:
        hostname = str(event.get("hostname", ""))
        info = self.workers.get(hostname) or WorkerInfo(hostname)
        self.workers[hostname] = info
        if kind == WORKER_OFFLINE:
            info.offline = True
        elif kind in ("worker-online", "worker-heartbeat"):
            info.offline = False
            info.last_heartbeat = float(event.get("local_received") or time.time())
        for name in ("freq", "pid", "clock", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys"):
            if event.get(name) is not None:
                setattr(info, name, event[name])

    def _task_event(self, kind: str, event: Event) -> None:
        self.task_counts[kind] += 1
        task_id = str(event["uuid"])
        task = self.tasks.get(task_id)
        if task is None:
            task = self.tasks[task_id] = TaskInfo(task_id)
            while len(self.tasks) > self.max_tasks:
                self.tasks.popitem(last=False)
        new_state = TASK_EVENT_STATE.get(kind)
        timestamp = float(event.get("timestamp") or 0.0)
        if kind in ("task-received", "task-sent"):
            for name in _RECEIVED_FIELDS:
                if name in event and (kind == "task-received" or name not in task.fields):
                    task.fields[name] = event[name]
        for name in _TASK_FIELDS:
            if name in event:
                task.fields[name] = event[name]
        if kind != "task-sent":
            task.hostname = str(event.get("hostname") or task.hostname or "") or None
        if new_state is None:
            return
        newer = timestamp >= task.timestamp and task.state not in READY_STATES
        if newer or precedence(new_state) < precedence(task.state):
            task.state = new_state
            task.timestamp = max(task.timestamp, timestamp)
            if new_state in (State.SUCCESS, State.FAILURE):
                now = float(event.get("local_received") or time.time())
                self._finished.append((now, task.name or "?", new_state))
                self._expire(now)

    # -- questions -------------------------------------------------------------------------------
    def alive_workers(self, now: float | None = None) -> list[WorkerInfo]:
        """Workers alive now, by name."""
        return [w for _, w in sorted(self.workers.items()) if w.alive(now)]

    def tasks_in(self, state: str) -> list[TaskInfo]:
        """Tasks whose state is ``state``, oldest first."""
        return [task for task in self.tasks.values() if task.state == state]

    def _expire(self, now: float) -> None:
        while self._finished and self._finished[0][0] < now - self.window:
            self._finished.popleft()

    def throughput(self, window: float = 10.0, now: float | None = None) -> float:
        """Tasks finished (succeeded or failed) per second over the last ``window`` seconds."""
        now = time.time() if now is None else now
        self._expire(now)
        return sum(1 for at, _, _ in self._finished if at >= now - window) / window

    def task_rates(self, window: float = 10.0, now: float | None = None) -> dict[str, float]:
        """Per task name: tasks finished per second over the last ``window`` seconds."""
        now = time.time() if now is None else now
        self._expire(now)
        counts = Counter(name for at, name, _ in self._finished if at >= now - window)
        return {name: count / window for name, count in sorted(counts.items())}
