"""The dashboard store's SQL (tables, indexes, upserts), its list filter and what a batch tells the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATES: dict[str, str] = {
    "task-sent": "PENDING",
    "task-received": "RECEIVED",
    "task-started": "STARTED",
    "task-succeeded": "SUCCESS",
    "task-failed": "FAILURE",
    "task-retried": "RETRY",
    "task-revoked": "REVOKED",
    "task-rejected": "REJECTED",
}
# The column each event's timestamp goes to (the latest attempt's, a retry sets them again).
STEP_COLUMN = {
    "task-sent": "sent",
    "task-received": "received",
    "task-started": "started",
    "task-succeeded": "finished",
    "task-failed": "finished",
    "task-revoked": "finished",
    "task-rejected": "finished",
}
RESULT_CAP = 4096  # characters of a result kept (the preview is size-capped, a huge result never fills the file)
TEXT_CAP = 8192
SORTABLE = ("updated", "name", "state", "hostname", "queue", "sent", "received", "started", "runtime")

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    uuid TEXT PRIMARY KEY, name TEXT, state TEXT, state_ts REAL NOT NULL DEFAULT 0, hostname TEXT, queue TEXT,
    args TEXT, kwargs TEXT, sent REAL, received REAL, started REAL, finished REAL, runtime REAL,
    exception TEXT, traceback TEXT, result TEXT, retries INTEGER NOT NULL DEFAULT 0, redelivered INTEGER,
    root_id TEXT, parent_id TEXT, retry_of TEXT, options TEXT, updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_updated ON tasks(updated);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state, updated);
CREATE INDEX IF NOT EXISTS tasks_name ON tasks(name, updated);
CREATE INDEX IF NOT EXISTS tasks_host ON tasks(hostname, updated);
CREATE INDEX IF NOT EXISTS tasks_queue ON tasks(queue, updated);
CREATE INDEX IF NOT EXISTS tasks_root ON tasks(root_id);
CREATE INDEX IF NOT EXISTS tasks_parent ON tasks(parent_id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, uuid TEXT NOT NULL, type TEXT NOT NULL, ts REAL NOT NULL, hostname TEXT, fields TEXT
);
CREATE INDEX IF NOT EXISTS events_uuid ON events(uuid, id);
CREATE TABLE IF NOT EXISTS workers (
    hostname TEXT PRIMARY KEY, last_heartbeat REAL, freq REAL, active INTEGER, processed INTEGER,
    loadavg TEXT, sw_ident TEXT, sw_ver TEXT, pid INTEGER, offline INTEGER NOT NULL DEFAULT 0, updated REAL
);
CREATE TABLE IF NOT EXISTS beat (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, user TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL
);
"""

# A task-sent event never moves a task back to PENDING: the producer stamps it on its own clock, often after
# a fast worker's task-succeeded (a Celery solo worker answers in 0.1 ms), and a retry's re-send follows its
# task-retried. Every other state follows the latest timestamp, which is how a retry's new attempt shows.
UPSERT = """
INSERT INTO tasks (uuid, name, state, state_ts, hostname, queue, args, kwargs, sent, received, started, finished,
    runtime, exception, traceback, result, retries, redelivered, root_id, parent_id, updated)
VALUES (:uuid, :name, :state, :ts, :hostname, :queue, :args, :kwargs, :sent, :received, :started, :finished,
    :runtime, :exception, :traceback, :result, :retries, :redelivered, :root_id, :parent_id, :ts)
ON CONFLICT(uuid) DO UPDATE SET
    name = coalesce(excluded.name, name),
    state = CASE WHEN excluded.state = 'PENDING' AND state <> 'PENDING' THEN state
        WHEN excluded.state_ts >= state_ts THEN excluded.state ELSE state END,
    state_ts = CASE WHEN excluded.state = 'PENDING' AND state <> 'PENDING' THEN state_ts
        ELSE max(state_ts, excluded.state_ts) END,
    hostname = coalesce(excluded.hostname, hostname), queue = coalesce(excluded.queue, queue),
    args = coalesce(excluded.args, args), kwargs = coalesce(excluded.kwargs, kwargs),
    sent = coalesce(excluded.sent, sent), received = coalesce(excluded.received, received),
    started = coalesce(excluded.started, started), finished = coalesce(excluded.finished, finished),
    runtime = coalesce(excluded.runtime, runtime), exception = coalesce(excluded.exception, exception),
    traceback = coalesce(excluded.traceback, traceback), result = coalesce(excluded.result, result),
    retries = retries + excluded.retries, redelivered = coalesce(excluded.redelivered, redelivered),
    root_id = coalesce(excluded.root_id, root_id), parent_id = coalesce(excluded.parent_id, parent_id),
    updated = max(updated, excluded.updated)
"""

WORKER_UPSERT = """
INSERT INTO workers (hostname, last_heartbeat, freq, active, processed, loadavg, sw_ident, sw_ver, pid, offline,
    updated)
VALUES (:hostname, :ts, :freq, :active, :processed, :loadavg, :sw_ident, :sw_ver, :pid, :offline, :ts)
ON CONFLICT(hostname) DO UPDATE SET
    last_heartbeat = max(coalesce(last_heartbeat, 0), excluded.last_heartbeat), freq = coalesce(excluded.freq, freq),
    active = coalesce(excluded.active, active), processed = coalesce(excluded.processed, processed),
    loadavg = coalesce(excluded.loadavg, loadavg), sw_ident = coalesce(excluded.sw_ident, sw_ident),
    sw_ver = coalesce(excluded.sw_ver, sw_ver), pid = coalesce(excluded.pid, pid), offline = excluded.offline,
    updated = excluded.updated
"""


@dataclass
class Observed:
    """What one ingested batch tells the metrics: task events by (name, state), run times, queue waits,
    redeliveries (a task received again without a retry in between)."""

    tasks: int = 0
    states: list[tuple[str, str]] = field(default_factory=list)
    runtimes: list[tuple[str, float]] = field(default_factory=list)
    waits: list[tuple[str, float]] = field(default_factory=list)
    redeliveries: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TaskFilter:
    """The list query of the Tasks page; every field is optional."""

    state: str = ""
    name: str = ""
    worker: str = ""
    queue: str = ""
    since: float | None = None
    until: float | None = None
    uuid: str = ""
    text: str = ""

    def where(self) -> tuple[str, list[Any]]:
        """The SQL condition and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("state", self.state), ("name", self.name), ("hostname", self.worker)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.queue:
            clauses.append("queue = ?")
            params.append(self.queue)
        if self.since is not None:
            clauses.append("updated >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("updated <= ?")
            params.append(self.until)
        if self.uuid:
            clauses.append("uuid LIKE ?")
            params.append(self.uuid.replace("%", "") + "%")
        if self.text:
            clauses.append("(instr(args, ?) > 0 OR instr(kwargs, ?) > 0)")
            params.extend([self.text, self.text])
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params
