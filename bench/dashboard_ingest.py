"""Ingest N task events into the dashboard's SQLite store; report events/s and the process's peak RSS.

    python bench/dashboard_ingest.py --events 1000000 [--batch 500] [--max-tasks 100000]

Events are a realistic mix: each task gets sent, received, started and succeeded (4 events), 50 task names,
written in batches as the dashboard's ingest loop does. Retention (--max-tasks) keeps the file bounded.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from celeriac.dashboard.store import EventStore


def events(count: int, t0: float) -> Iterator[dict[str, Any]]:
    """``count`` task events, four per task."""
    for n in range(count // 4):
        uuid = f"{n:08x}-bench"
        name = f"proj.task{n % 50}"
        ts = t0 + n * 0.001
        yield {"type": "task-sent", "uuid": uuid, "name": name, "timestamp": ts, "queue": "celery"}
        yield {
            "type": "task-received",
            "uuid": uuid,
            "name": name,
            "args": f"({n}, 'x')",
            "kwargs": "{}",
            "timestamp": ts + 0.01,
            "hostname": "celery@bench",
        }
        yield {"type": "task-started", "uuid": uuid, "timestamp": ts + 0.02, "hostname": "celery@bench"}
        yield {
            "type": "task-succeeded",
            "uuid": uuid,
            "result": str(n),
            "runtime": 0.005,
            "timestamp": ts + 0.03,
            "hostname": "celery@bench",
        }


def rss_mb() -> float:
    """Peak resident set size of this process, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--max-tasks", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "history.sqlite")
        store = EventStore(path, max_tasks=args.max_tasks)
        batch: list[dict[str, Any]] = []
        start = time.perf_counter()
        done = 0
        checkpoints = {args.events // 4, args.events // 2, args.events}
        for event in events(args.events, time.time()):
            batch.append(event)
            if len(batch) >= args.batch:
                store.ingest(batch)
                done += len(batch)
                batch.clear()
                if done in checkpoints:
                    print(f"  {done:>9} events  peak RSS {rss_mb():.0f} MiB", flush=True)
        if batch:
            store.ingest(batch)
            done += len(batch)
        store.trim()
        elapsed = time.perf_counter() - start
        _, kept = store.tasks(store_filter())
        size = os.path.getsize(path) / 1e6
        store.close()
    print(f"{done} events in {elapsed:.1f}s: {done / elapsed:,.0f} events/s; peak RSS {rss_mb():.0f} MiB;")
    print(f"tasks kept {kept} (max {args.max_tasks}); file {size:.0f} MB")


def store_filter() -> Any:
    from celeriac.dashboard.store import TaskFilter

    return TaskFilter()


if __name__ == "__main__":
    main()
