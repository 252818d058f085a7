"""EventStore: the dashboard's durable history, one SQLite file of its own.

Every event updates one row per task (its latest state and the times of each step) and appends one row to a
bounded event log (the per-attempt timeline). Retention trims both by age and by task count, so the file and
the process's memory stay bounded whatever the volume; nothing is kept in Python besides the current batch.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from celeriac.dashboard.schema import (
    RESULT_CAP,
    SCHEMA,
    SORTABLE,
    STATES,
    STEP_COLUMN,
    TEXT_CAP,
    UPSERT,
    WORKER_UPSERT,
    Observed,
    TaskFilter,
)

__all__ = ["SORTABLE", "STATES", "EventStore", "Observed", "TaskFilter"]


def _capped(value: Any, cap: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= cap else text[:cap] + f"… [{len(text) - cap} more characters]"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class EventStore:
    """The SQLite history. Thread-safe (one connection behind a lock): the ingest loop and the pages share it.

    Args:
        path: the database file (``:memory:`` for tests that need no restart).
        max_tasks: tasks kept (the oldest by last update go first).
        max_age: seconds a task is kept after its last update.
        redact: callable turning (task name, args, kwargs) into what may be stored.
    """

    def __init__(
        self,
        path: str,
        max_tasks: int = 100_000,
        max_age: float = 7 * 86400.0,
        redact: Any = None,
    ) -> None:
        self.path = path
        self.max_tasks = max_tasks
        self.max_age = max_age
        self._redact = redact
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self.version = 0  # bumped by every write: the live view polls it
        self._since_trim = 0

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    # -- ingest ---------------------------------------------------------------------------------------------

    def task_row(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The upsert parameters one task event gives."""
        kind = str(event.get("type", ""))
        ts = _number(event.get("timestamp")) or time.time()
        args, kwargs = event.get("args"), event.get("kwargs")
        if self._redact is not None and (args is not None or kwargs is not None):
            args, kwargs = self._redact(event.get("name"), args, kwargs)
        row: dict[str, Any] = {
            "uuid": str(event["uuid"]),
            "name": event.get("name"),
            "state": STATES[kind],
            "ts": ts,
            "hostname": event.get("hostname") if kind != "task-sent" else None,
            "queue": event.get("queue") or event.get("routing_key"),
            "args": _capped(args, TEXT_CAP),
            "kwargs": _capped(kwargs, TEXT_CAP),
            "sent": None,
            "received": None,
            "started": None,
            "finished": None,
            "runtime": _number(event.get("runtime")),
            "exception": _capped(event.get("exception"), TEXT_CAP),
            "traceback": _capped(event.get("traceback"), 4 * TEXT_CAP),
            "result": _capped(event.get("result"), RESULT_CAP),
            "retries": 1 if kind == "task-retried" else 0,
            "redelivered": 1 if event.get("redelivered") else None,
            "root_id": event.get("root_id"),
            "parent_id": event.get("parent_id"),
        }
        column = STEP_COLUMN.get(kind)
        if column:
            row[column] = ts
        return row

    def ingest(self, events: Iterable[Mapping[str, Any]]) -> Observed:
        """Store a batch of events in one transaction; returns what the metrics observe in it."""
        task_rows: list[dict[str, Any]] = []
        log_rows: list[tuple[Any, ...]] = []
        worker_rows: list[dict[str, Any]] = []
        beat_rows: list[tuple[str, str, float]] = []
        for event in events:
            kind = str(event.get("type", ""))
            if kind in STATES and event.get("uuid"):
                row = self.task_row(event)
                task_rows.append(row)
                fields = {k: v for k, v in event.items() if k in ("exception", "runtime", "retries", "reason")}
                log_rows.append((row["uuid"], kind, row["ts"], event.get("hostname"), json.dumps(fields)))
            elif kind in ("beat-leader", "beat-fired"):
                name = "leader" if kind == "beat-leader" else f"fired:{event.get('entry')}"
                ts = _number(event.get("timestamp")) or time.time()
                beat_rows.append((name, json.dumps(dict(event), default=str), ts))
            elif kind.startswith("worker-") and event.get("hostname"):
                load = event.get("loadavg")
                worker_rows.append(
                    {
                        "hostname": str(event["hostname"]),
                        "ts": _number(event.get("timestamp")) or time.time(),
                        "freq": _number(event.get("freq")),
                        "active": event.get("active"),
                        "processed": event.get("processed"),
                        "loadavg": json.dumps(load) if isinstance(load, list) else None,
                        "sw_ident": event.get("sw_ident"),
                        "sw_ver": event.get("sw_ver"),
                        "pid": event.get("pid"),
                        "offline": 1 if kind == "worker-offline" else 0,
                    }
                )
        seen = Observed()
        if not (task_rows or worker_rows or beat_rows):
            return seen
        with self._lock:
            self._db.execute("BEGIN")
            try:
                if task_rows:
                    self._observe(task_rows, [row[1] for row in log_rows], seen)
                    self._db.executemany(UPSERT, task_rows)
                    self._db.executemany(
                        "INSERT INTO events (uuid, type, ts, hostname, fields) VALUES (?, ?, ?, ?, ?)", log_rows
                    )
                if worker_rows:
                    self._db.executemany(WORKER_UPSERT, worker_rows)
                if beat_rows:
                    self._db.executemany(
                        "INSERT INTO beat (key, value, ts) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                        "value = excluded.value, ts = excluded.ts WHERE excluded.ts >= beat.ts",
                        beat_rows,
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.version += 1
            self._since_trim += len(task_rows)
        if self._since_trim >= 10_000:
            self.trim()
        return seen

    def _observe(self, rows: list[dict[str, Any]], kinds: list[str], seen: Observed) -> None:
        """Fill ``seen`` from a batch, reading what earlier events stored (names, sent/received times)."""
        known: dict[str, dict[str, Any]] = {}
        ids = list({row["uuid"] for row in rows})
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for found in self._db.execute(
                f"SELECT uuid, name, sent, received, state FROM tasks WHERE uuid IN ({marks})", chunk
            ):
                known[found["uuid"]] = dict(found)
        for row, kind in zip(rows, kinds, strict=True):
            before = known.setdefault(row["uuid"], {"name": None, "sent": None, "received": None, "state": None})
            name = row["name"] or before["name"] or "unknown"
            before["name"] = name
            seen.tasks += 1
            seen.states.append((name, row["state"]))
            if kind == "task-received":
                if before["received"] is not None and before["state"] != "RETRY":
                    seen.redeliveries.append(name)
                before["received"] = row["ts"]
            elif kind == "task-sent":
                before["sent"] = row["ts"]
            elif kind == "task-started":
                waited_since = before["sent"] or before["received"]
                if waited_since is not None:
                    seen.waits.append((name, max(0.0, row["ts"] - waited_since)))
            elif row["runtime"] is not None:
                seen.runtimes.append((name, row["runtime"]))
            before["state"] = row["state"]

    def link_retry(self, new_id: str, old_id: str, name: str, args: str, kwargs: str, queue: str | None) -> None:
        """Record a task the dashboard re-sent (PENDING, linked to the failed one) before any event arrives."""
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO tasks (uuid, name, state, state_ts, queue, args, kwargs, sent, retry_of, updated) "
                "VALUES (?, ?, 'PENDING', 0, ?, ?, ?, ?, ?, ?) ON CONFLICT(uuid) DO UPDATE SET retry_of = ?",
                (new_id, name, queue, args, kwargs, now, old_id, now, old_id),
            )
            self.version += 1

    def discard(self, uuid: str) -> bool:
        """Forget a task (its row and timeline)."""
        with self._lock:
            gone = self._db.execute("DELETE FROM tasks WHERE uuid = ?", (uuid,)).rowcount
            self._db.execute("DELETE FROM events WHERE uuid = ?", (uuid,))
            self.version += 1
        return bool(gone)

    def trim(self, now: float | None = None) -> int:
        """Apply retention (age, then count); returns the tasks removed."""
        now = time.time() if now is None else now
        with self._lock:
            self._since_trim = 0
            removed = self._db.execute("DELETE FROM tasks WHERE updated < ?", (now - self.max_age,)).rowcount
            count = self._db.execute("SELECT count(*) FROM tasks").fetchone()[0]
            if count > self.max_tasks:
                removed += self._db.execute(
                    "DELETE FROM tasks WHERE uuid IN (SELECT uuid FROM tasks ORDER BY updated LIMIT ?)",
                    (count - self.max_tasks,),
                ).rowcount
            if removed:
                self._db.execute("DELETE FROM events WHERE uuid NOT IN (SELECT uuid FROM tasks)")
            return removed

    # -- queries --------------------------------------------------------------------------------------------

    def tasks(
        self, where: TaskFilter, sort: str = "updated", descending: bool = True, offset: int = 0, limit: int = 50
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of tasks and the total matching."""
        if sort not in SORTABLE:
            raise ValueError(f"cannot sort by {sort!r}: one of {', '.join(SORTABLE)}")
        condition, params = where.where()
        order = "DESC" if descending else "ASC"
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM tasks{condition}", params).fetchone()[0]
            rows = self._db.execute(
                f"SELECT * FROM tasks{condition} ORDER BY {sort} {order}, uuid LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [dict(row) for row in rows], int(total)

    def task(self, uuid: str) -> dict[str, Any] | None:
        """One task's row, or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM tasks WHERE uuid = ?", (uuid,)).fetchone()
        return dict(row) if row else None

    def unreceived(self, queue: str, depth: int, limit: int) -> list[dict[str, Any]]:
        """A guess at the next ``limit`` messages of a FIFO queue holding ``depth``: of the ``depth`` tasks most
        recently sent to ``queue`` that no worker has received yet, the oldest ``limit``, oldest first. (Older
        never-received tasks were purged or lost: the queue no longer holds them.)"""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM (SELECT uuid, name, retries, root_id, sent FROM tasks WHERE queue = ? "
                "AND state = 'PENDING' AND sent IS NOT NULL ORDER BY sent DESC LIMIT ?) ORDER BY sent LIMIT ?",
                (queue, depth, limit),
            ).fetchall()
        return [dict(row) for row in rows]

    def timeline(self, uuid: str) -> list[dict[str, Any]]:
        """Every event of one task, in arrival order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT type, ts, hostname, fields FROM events WHERE uuid = ? ORDER BY ts, id", (uuid,)
            ).fetchall()
        return [{**dict(row), "fields": json.loads(row["fields"] or "{}")} for row in rows]

    def related(self, uuid: str) -> dict[str, list[dict[str, Any]]]:
        """Children (parent_id), the tree under the same root, and dashboard re-sends of this task."""
        with self._lock:
            children = self._db.execute(
                "SELECT uuid, name, state FROM tasks WHERE parent_id = ? ORDER BY sent", (uuid,)
            ).fetchall()
            resent = self._db.execute(
                "SELECT uuid, name, state FROM tasks WHERE retry_of = ? ORDER BY updated", (uuid,)
            ).fetchall()
        return {"children": [dict(r) for r in children], "resent": [dict(r) for r in resent]}

    def tree(self, root_id: str) -> list[dict[str, Any]]:
        """Every task of one canvas (same root_id), the root first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT uuid, name, state, parent_id FROM tasks WHERE root_id = ? OR uuid = ? ORDER BY sent",
                (root_id, root_id),
            ).fetchall()
        return [dict(row) for row in rows]

    def workers(self) -> list[dict[str, Any]]:
        """Every worker seen, by hostname."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM workers ORDER BY hostname").fetchall()
        return [dict(row) for row in rows]

    def purge_workers(self, before: float) -> int:
        """Forget workers not heard from since ``before`` (auto-purge of long-gone workers)."""
        with self._lock:
            return int(self._db.execute("DELETE FROM workers WHERE last_heartbeat < ?", (before,)).rowcount)

    def names(self, column: str) -> list[str]:
        """Distinct values of ``name``/``queue``/``hostname`` (filter choices)."""
        if column not in ("name", "queue", "hostname", "state"):
            raise ValueError(column)
        with self._lock:
            rows = self._db.execute(f"SELECT DISTINCT {column} FROM tasks WHERE {column} IS NOT NULL").fetchall()
        return sorted(str(row[0]) for row in rows)

    def counts(self) -> list[tuple[str, str, int]]:
        """(name, state, tasks) over the stored history."""
        with self._lock:
            rows = self._db.execute("SELECT name, state, count(*) FROM tasks GROUP BY name, state").fetchall()
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def beat(self) -> dict[str, dict[str, Any]]:
        """The latest ``beat-leader`` event (key ``leader``) and ``beat-fired`` per entry (``fired:<entry>``)."""
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM beat").fetchall()
        return {str(row[0]): json.loads(row[1]) for row in rows}

    def audit(self, user: str, action: str, detail: Mapping[str, Any]) -> None:
        """Append one action to the audit log."""
        with self._lock:
            self._db.execute(
                "INSERT INTO audit (ts, user, action, detail) VALUES (?, ?, ?, ?)",
                (time.time(), user, action, json.dumps(dict(detail), default=str, sort_keys=True)),
            )
            self.version += 1

    def audit_log(self, limit: int = 200) -> list[dict[str, Any]]:
        """The latest actions, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(row) for row in rows]

    def filtered_ids(self, where: TaskFilter, limit: int) -> Sequence[str]:
        """Task ids matching a filter (bulk actions), newest first, at most ``limit``."""
        condition, params = where.where()
        with self._lock:
            rows = self._db.execute(
                f"SELECT uuid FROM tasks{condition} ORDER BY updated DESC LIMIT ?", [*params, limit]
            ).fetchall()
        return [str(row[0]) for row in rows]
