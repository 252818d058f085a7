"""Celery's everyday worker options on a real worker process (SQLite broker): ``-D`` with ``%n`` file names,
``--purge``, ``-X``, ``-O fair``; and the control CLI's exit codes, argument order and closed pipes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import HERE, WorkerProcess
from test_cli import celeriac

from celeriac import App


def wait_until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_detached_worker_with_placeholder_files(sqlite_url: str, tmp_path: Path) -> None:
    done = celeriac(
        "-A", "taskapp", "worker", "-D", "-n", "det@box", "-l", "info",
        "--logfile", str(tmp_path / "%n-%h.log"), "--pidfile", str(tmp_path / "%n.pid"),
        broker=sqlite_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # the launcher returns once the daemon is forked
    pidfile, logfile = tmp_path / "det.pid", tmp_path / "det-box.log"
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() and "ready." in logfile.read_text())
    pid = int(pidfile.read_text())
    try:
        app = App("taskapp", broker=sqlite_url)
        assert app.send_task("taskapp.add", (2, 3)).get(timeout=20) == 5
        app.close()
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid) and not pidfile.exists())
    assert "Warm shutdown" in logfile.read_text()


def test_detach_needs_a_logfile_and_only_fair_is_an_optimization(sqlite_url: str) -> None:
    for args, expected in (
        (["-D"], "-D/--detach needs --logfile"),
        (["-O", "default"], "-O default: only 'fair' is supported"),
        (["-X", "celery"], "-X/--exclude-queues leaves no queue to consume"),
        (["--logfile", "%q.log"], "unknown placeholder %q"),
    ):
        done = celeriac("-A", "taskapp", "worker", *args, broker=sqlite_url)
        assert done.returncode == 2 and expected in done.stderr, (args, done.stderr)


def test_purge_exclude_and_the_control_cli(sqlite_url: str) -> None:
    app = App("taskapp", broker=sqlite_url)
    for n in range(3):
        app.send_task("taskapp.add", (n, n), queue="stale")
    app.close()
    worker = WorkerProcess(sqlite_url, ["-n", "opt@itest", "-Q", "stale,other", "-X", "other", "--purge", "-O", "fair"])
    try:
        worker.wait_for_output("opt@itest ready.")
        assert "Purged 3 messages before starting." in worker.output
        queues = celeriac("-A", "taskapp", "inspect", "active_queues", "--json", broker=sqlite_url)
        assert '"name": "stale"' in queues.stdout and '"other"' not in queues.stdout, queues.stdout
        # Options after the command's words; an ERROR reply fails the command.
        bad = celeriac("-A", "taskapp", "control", "rate_limit", "-t", "2", "no.such.task", "1/s", broker=sqlite_url)
        assert bad.returncode == 1 and "ERROR" in bad.stdout, (bad.stdout, bad.stderr)
        # A reader that goes away after one line: no traceback, no "Exception ignored".
        env = {**os.environ, "PYTHONPATH": str(HERE), "CELERIAC_BROKER_URL": sqlite_url}
        piped = subprocess.run(
            f"{sys.executable} -m celeriac -A taskapp inspect stats | head -1",
            shell=True, cwd=HERE, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert piped.stdout.startswith("->  opt@itest: OK") and "Traceback" not in piped.stderr, piped.stderr
        assert "BrokenPipe" not in piped.stderr and "Exception ignored" not in piped.stderr, piped.stderr
    finally:
        worker.stop()


@pytest.mark.parametrize("priority", ["-1", "256"])
def test_call_priority_is_checked(sqlite_url: str, priority: str) -> None:
    done = celeriac("-A", "taskapp", "call", "taskapp.add", "--priority", priority, broker=sqlite_url)
    assert done.returncode == 2 and "--priority must be from 0 to 255" in done.stderr, done.stderr
