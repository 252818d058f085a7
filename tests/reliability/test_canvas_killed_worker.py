"""Chord callbacks run exactly once while workers are SIGKILLed mid-chord and restarted (issue 13).

20 chords of 5 ``acks_late`` header tasks each run on two worker subprocesses; one of them is SIGKILLed twice
while it holds header tasks, and restarted. The killed worker's header tasks are redelivered and run again
(their outcomes reach the join twice: the fence must not count them twice), the two workers finish the last
header tasks of a chord at nearly the same moment (one claim), and a worker may die holding a claim (it lapses
and the redelivered header task takes it over). The ledger counts every body run: each chord's exactly once,
also after every queue is drained. Once on Redis (Celery's chord keys), once on SQLite (one transaction).
"""

from __future__ import annotations

import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from celeriac import App, chord, signature

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relkit import Ledger, wait_until

CHORDS, SIZE = 20, 5
ARGS = ["-P", "threads", "-c", "3", "--prefetch-multiplier", "2"]
ENV = {"REL_VISIBILITY": "2"}  # Redis: a dead worker's unacked tasks come back after 2 s (live ones renew)


def broker_empty(kind: str, url: str, prefix: str, queue: str) -> bool:
    """No message left in the broker: none queued, none delivered and un-acked."""
    if kind == "redis":
        client = redis.Redis.from_url(url)
        try:
            return client.llen(prefix + queue) == 0 and client.hlen(prefix + "unacked") == 0
        finally:
            client.close()
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0


def publish(url: str, prefix: str, queue: str, ledger: Ledger) -> None:
    app = App("relclient", broker=url)
    if prefix:
        app.conf.broker_transport_options = {"global_keyprefix": prefix}
        app.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    try:
        for n in range(CHORDS):
            tag = f"body{n}"
            header = [signature("relapp.chord_part", (tag, i, 0.05), app=app) for i in range(SIZE)]
            body = signature("relapp.chord_body", (tag,), app=app).set(queue=queue)
            chord(header, body, app=app).apply_async(queue=queue)
            ledger.published.append(tag)
    finally:
        app.close()


@pytest.mark.parametrize("kind", ["redis", "sqlite"])
def test_every_chord_callback_runs_exactly_once_across_kills(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, queue_name: str, ledger: Ledger,
    workers: Callable[..., Any],
) -> None:  # fmt: skip
    if kind == "redis":
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("prefix")
    else:
        url, prefix = f"sqlite:///{tmp_path / 'broker.db'}", ""
    publish(url, prefix, queue_name, ledger)
    args = ["-Q", queue_name, *ARGS]
    steady = workers(url, prefix, ledger, [*args, "-n", "steady@%h"], ENV)
    victim = workers(url, prefix, ledger, [*args, "-n", "victim1@%h"], ENV)
    parts = [f"part body{n} {i}" for n in range(CHORDS) for i in range(SIZE)]
    for round_ in (1, 2):
        wait_until(
            lambda r=round_: ledger.ran(parts) >= r * len(parts) // 3, 90, f"a third of the parts ran ({round_})"
        )
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        victim = workers(url, prefix, ledger, [*args, "-n", f"victim{round_ + 1}@%h"], ENV)
        victim.wait_for_output("ready.")
    wait_until(lambda: ledger.ran(ledger.published) == CHORDS, 120, "every chord body ran")
    # The final count once the broker holds nothing (queued or unacked): no redelivery can come after it.
    wait_until(lambda: broker_empty(kind, url, prefix, queue_name), 60, "every message acked")
    lost, duplicated = ledger.report(f"{kind}: {CHORDS} chords x {SIZE}, acks_late, SIGKILL twice")
    reruns = sum(count - 1 for line, count in ledger.executed().items() if line.startswith("part") and count > 1)
    print(f"[chord-kill] {kind}: header tasks run again after the kills: {reruns}")
    assert (lost, duplicated) == (0, 0)
    for worker in (steady, victim):
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, worker.output[-3000:]
