"""``celeriac inspect``, ``control``, ``status`` and ``events`` against real worker processes (SQLite broker)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import HERE, WorkerProcess
from test_cli import celeriac


@pytest.fixture
def worker(sqlite_url: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(
        sqlite_url,
        [
            "-n",
            "cli1@itest",
            "--without-mingle",
            "--heartbeat-interval",
            "0.3",
            "--statedb",
            str(tmp_path / "cli1.state"),
        ],
    )
    proc.wait_for_output("cli1@itest ready.")
    yield proc
    proc.kill()


def test_inspect_control_and_status_talk_to_a_worker(worker: WorkerProcess, sqlite_url: str) -> None:
    ping = celeriac("-A", "taskapp", "inspect", "ping", "-d", "cli1@itest", broker=sqlite_url)
    assert ping.returncode == 0, ping.stderr
    assert ping.stdout == "->  cli1@itest: OK\n        pong\n\n1 node online.\n"
    stats = celeriac("-A", "taskapp", "inspect", "stats", "-d", "cli1@itest", "--json", broker=sqlite_url)
    reply = json.loads(stats.stdout)["cli1@itest"]
    assert reply["pool"]["implementation"] == "celeriac.pools.aio:AsyncioPool" and reply["total"] == {}
    rate = celeriac(
        "-A", "taskapp", "control", "rate_limit", "taskapp.add", "10/m", "-d", "cli1@itest", broker=sqlite_url
    )
    assert rate.stdout == "->  cli1@itest: OK\n        new rate limit set successfully\n"
    revoke = celeriac("-A", "taskapp", "control", "revoke", "id-1", "-d", "cli1@itest", broker=sqlite_url)
    assert "tasks {'id-1'} flagged as revoked" in revoke.stdout
    revoked = celeriac("-A", "taskapp", "inspect", "revoked", "-d", "cli1@itest", "-j", broker=sqlite_url)
    assert json.loads(revoked.stdout) == {"cli1@itest": ["id-1"]}
    status = celeriac("-A", "taskapp", "status", broker=sqlite_url)
    assert status.returncode == 0 and "cli1@itest: OK" in status.stdout and "1 node online." in status.stdout
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_statedb_keeps_revoked_ids_over_a_restart(sqlite_url: str, tmp_path: Path) -> None:
    state = str(tmp_path / "w.state")
    args = ["-n", "sdb@itest", "--without-mingle", "--statedb", state]
    first = WorkerProcess(sqlite_url, args)
    try:
        first.wait_for_output("sdb@itest ready.")
        done = celeriac("-A", "taskapp", "control", "revoke", "kept-id", "-d", "sdb@itest", broker=sqlite_url)
        assert done.returncode == 0, done.stderr
        first.signal(signal.SIGTERM)
        assert first.wait() == 0
    finally:
        first.kill()
    second = WorkerProcess(sqlite_url, args)
    try:
        second.wait_for_output("1 revoked id(s) loaded")
        second.wait_for_output("sdb@itest ready.")
        revoked = celeriac("-A", "taskapp", "inspect", "revoked", "-d", "sdb@itest", "--json", broker=sqlite_url)
        assert json.loads(revoked.stdout) == {"sdb@itest": ["kept-id"]}
    finally:
        second.kill()


def test_events_dump_prints_worker_events(worker: WorkerProcess, sqlite_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(HERE), "CELERIAC_BROKER_URL": sqlite_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "taskapp", "events", "--dump"],
        cwd=HERE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[dict[str, object]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(json.loads(line))
            if lines[-1]["type"] == "worker-heartbeat":
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=20)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    assert lines and lines[-1]["type"] == "worker-heartbeat" and lines[-1]["hostname"] == "cli1@itest"


@pytest.mark.parametrize(
    ("args", "expected", "code"),
    [
        (["inspect", "pnig"], "unknown inspect command 'pnig'; did you mean 'ping'?", 2),
        (["control", "ping"], "unknown control command 'ping'", 2),
        (["control", "rate_limit", "a", "b", "c"], "rate_limit: too many arguments: c", 2),
        (["control", "revoke"], "revoke: give at least one task id", 2),
        (["inspect", "ping", "-t", "0"], "-t/--timeout must be more than 0", 2),
        (["status", "-t", "0.2"], "Error: No nodes replied within time constraint", 1),
        (["worker", "--heartbeat-interval", "0"], "--heartbeat-interval must be more than 0", 2),
    ],
)
def test_mistakes_and_silence_are_one_line(args: list[str], expected: str, code: int, sqlite_url: str) -> None:
    done = celeriac("-A", "taskapp", *args, broker=sqlite_url)
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
