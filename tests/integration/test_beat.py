"""Beat in real processes: ``worker -B`` on SQLite, and three beat processes on Redis whose leader is killed
and then frozen, while a worker runs what they send: every slot runs once, and no gap outlasts the takeover."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from procs import HERE, LoggedProcess

from celeriac.testing import wait_for

LEASE = 1.0
EVERY = 1.0
# A leader that stops renewing loses the lease within one lease; followers look every half lease; the new leader
# fires the latest missed slot at once. Plus one interval and the worker's pick-up time.
TAKEOVER_BOUND = 2 * LEASE + EVERY + 1.0


def beat_env(broker: str, backend: str, ledger: Path, every: float = EVERY) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(HERE), "CELERIAC_BROKER_URL": broker, "CELERIAC_RESULT_BACKEND": backend}
    env.update(BEAT_LEDGER=str(ledger), BEAT_LEASE=str(LEASE), BEAT_EVERY=str(every))
    return env


def celeriac(env: dict[str, str], *args: str) -> LoggedProcess:
    return LoggedProcess([sys.executable, "-m", "celeriac", "-A", "beatapp", *args], HERE, env)


def run_once(cwd: Path, env: dict[str, str], app: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``celeriac -A app ...`` to its end (a start-up refusal), its output captured."""
    command = [sys.executable, "-m", "celeriac", "-A", app, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def ledger_rows(ledger: Path) -> list[tuple[str, float, str]]:
    if not ledger.exists():
        return []
    rows = []
    for line in ledger.read_text().splitlines():
        ident, when, origin = line.split(" ")
        rows.append((ident, float(when), origin))
    return rows


def wait_rows(ledger: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(ledger_rows(ledger)) < count:
        assert time.monotonic() < deadline, f"only {len(ledger_rows(ledger))} of {count} runs within {timeout}s"
        time.sleep(0.05)


def leader(beats: list[LoggedProcess]) -> LoggedProcess:
    """The beat that took the lease last (the highest token any of them logged)."""
    best, best_token = None, -1
    for beat in beats:
        for token in re.findall(r"leading \(lease token (\d+)\)", beat.output):
            if int(token) > best_token:
                best, best_token = beat, int(token)
    assert best is not None, "no beat leads"
    return best


def test_worker_with_beat_runs_the_schedule_and_lists_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'beat.db'}"
    ledger = tmp_path / "ledger"
    env = beat_env(url, url, ledger, every=0.5)
    worker = celeriac(env, "worker", "-B", "-P", "threads", "-l", "info")
    try:
        wait_rows(ledger, 3, timeout=30)
    finally:
        assert worker.stop() == 0, worker.output
    rows = ledger_rows(ledger)
    assert len({ident for ident, _, _ in rows}) == len(rows)
    assert all(origin.startswith("gen") and "@" in origin for _, _, origin in rows)
    assert "gave up the lease" in worker.output
    listing = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "beatapp", "beat", "--list"],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "tick" in listing.stdout and "every 0.5s" in listing.stdout and "never" not in listing.stdout


def test_a_bad_schedule_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "CELERIAC_BROKER_URL": f"sqlite:///{tmp_path / 'b.db'}"}
    (tmp_path / "badbeat.py").write_text(
        "from celeriac import App\napp = App('badbeat')\n"
        "app.conf.beat_schedule = {'t': {'task': 'x', 'schedule': 1, 'options': {'task_id': 'x'}}}\n"
    )
    for verb in (["beat"], ["worker", "-B"]):
        done = run_once(tmp_path, env, "badbeat", *verb)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().count("\n") == 0 and "'task_id'" in done.stderr, done.stderr


def test_beat_refuses_a_result_backend_that_cannot_hold_its_lease(tmp_path: Path, amqp_url: str) -> None:
    """rpc:// keeps no records, so beat cannot lead: one line and exit 2, not a warning every half second, and
    ``worker -B`` says so before it starts consuming."""
    env = {**beat_env(amqp_url, "rpc://", tmp_path / "ledger"), "BEAT_LEDGER": str(tmp_path / "ledger")}
    for verb in (["beat"], ["worker", "-B", "-c", "1"]):
        done = run_once(HERE, env, "beatapp", *verb)
        assert done.returncode == 2, done.stderr
        errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
        assert errors == [
            "celeriac: error: beat needs a result backend that can hold its lease (redis:// or sqlite://), not rpc://"
        ], done.stderr
        assert "transport" not in done.stderr  # refused before the worker starts: no banner, no message taken


@pytest.mark.timeout(120)
def test_three_beats_fire_each_slot_once_through_a_kill_and_a_freeze(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    ledger = tmp_path / "ledger"
    env = beat_env(redis_url, redis_url, ledger)
    env["BEAT_PREFIX"] = redis_prefix
    worker = celeriac(env, "worker", "-P", "threads", "-l", "info", "--without-mingle", "--without-gossip")
    beats = [celeriac(env, "beat", "-l", "info") for _ in range(3)]
    try:
        worker.wait_for_output("ready.", timeout=30)
        wait_rows(ledger, 3, timeout=30)
        first = leader(beats)
        first.kill()  # SIGKILL: the lease is left to expire
        wait_rows(ledger, len(ledger_rows(ledger)) + 3, timeout=30)
        second = leader([b for b in beats if b is not first])
        assert second is not first
        second.signal(signal.SIGSTOP)  # frozen past its lease: it must not fire when it wakes
        wait_rows(ledger, len(ledger_rows(ledger)) + 3, timeout=30)
        second.signal(signal.SIGCONT)
        wait_rows(ledger, len(ledger_rows(ledger)) + 3, timeout=30)
    finally:
        for beat in beats:
            beat.stop()
        worker.stop()
    rows = ledger_rows(ledger)
    ids = Counter(ident for ident, _, _ in rows)
    assert [ident for ident, n in ids.items() if n > 1] == [], "a slot ran twice"
    times = sorted(when for _, when, _ in rows)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) <= TAKEOVER_BOUND, (gaps, [b.output for b in beats])
    assert "lost the lease" in second.output or "stepping down" in second.output, second.output


async def test_each_fire_is_an_event_and_a_stopped_leader_hands_over_at_once(sqlite_url: str) -> None:
    from celeriac import App
    from celeriac.beat import Beat
    from celeriac.events.receiver import EventReceiver

    def app_() -> App:
        app = App("beatev", broker=sqlite_url)
        app.conf.beat_schedule = {"tick": {"task": "beatev.tick", "schedule": 0.2}}
        app.conf.beat_lease_seconds = 30.0  # a long lease: only the release on stop lets the follower in soon
        app.conf.broker_transport_options = {"polling_interval": 0.02}
        return app

    watcher, first_app, second_app = app_(), app_(), app_()
    first, second = Beat(first_app), Beat(second_app)
    async with EventReceiver(await watcher.atransport(), ("beat.#",)) as events:
        running = asyncio.create_task(first.run())
        await wait_for(lambda: first.is_leader, timeout=10)
        following = asyncio.create_task(second.run())
        fired = []
        async for event in events:
            if event["type"] == "beat-fired":
                fired.append(event)
            if len(fired) == 2:
                break
        assert {e["holder"] for e in fired} == {first.holder} and fired[0]["entry"] == "tick"
        assert not second.is_leader
        first.stop()
        await running
        await wait_for(lambda: second.is_leader, timeout=10)  # far sooner than the 30 s lease
        second.stop()
        await following
    for app in (watcher, first_app, second_app):
        await app.aclose()
