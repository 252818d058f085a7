"""The ``celeriac`` command line, run as a user would: real processes, real SQLite broker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import HERE, WorkerProcess


def celeriac(*args: str, broker: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    if broker:
        env["CELERIAC_BROKER_URL"] = broker
    return subprocess.run(
        [sys.executable, "-m", "celeriac", *args],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def test_version() -> None:
    done = celeriac("--version")
    assert done.returncode == 0 and done.stdout.startswith("celeriac ")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-A", "taskapp", "worker", "-c", "many"], "argument -c/--concurrency: invalid int value: 'many'"),
        (["-A", "taskapp", "worker", "-P", "thread"], "unknown pool 'thread'; did you mean 'threads'?"),
        (["-A", "taskapp", "worker", "-l", "loud"], "argument -l/--loglevel: invalid parse_level value"),
        (["-A", "no_such_module_xyz", "worker"], "cannot import 'no_such_module_xyz'"),
        (["-A", "taskapp", "-b", "redis+sockt:///tmp/x", "worker"], "unknown broker scheme 'redis+sockt'"),
        (["-A", "taskapp", "worker", "--bogus"], "unrecognized arguments: --bogus"),
        (["-A", "taskapp", "call", "taskapp.add", "--args", "[1,"], "--args: not valid JSON"),
        (["-A", "taskapp", "worker", "-c", "0"], "-c/--concurrency must be at least 1"),
        (["-A", "taskapp", "worker", "--loop", "uvlop"], "--loop: unknown event loop 'uvlop'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args: list[str], expected: str, sqlite_url: str) -> None:
    done = celeriac(*args, broker=sqlite_url)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert expected in lines[0]
    assert "Traceback" not in done.stderr


def test_call_result_purge_against_a_worker(sqlite_url: str) -> None:
    sent = celeriac("-A", "taskapp", "call", "taskapp.add", "--args", "[2, 3]", broker=sqlite_url)
    assert sent.returncode == 0, sent.stderr
    task_id = sent.stdout.strip()
    pending = celeriac("-A", "taskapp", "result", task_id, broker=sqlite_url)
    assert pending.stdout.strip() == "PENDING"
    worker = WorkerProcess(sqlite_url)
    try:
        done = celeriac("-A", "taskapp", "result", task_id, "--wait", "--timeout", "30", broker=sqlite_url)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["SUCCESS", "5"]
        failed_id = celeriac(
            "-A", "taskapp", "call", "taskapp.fail", "--args", '["kaboom"]', broker=sqlite_url
        ).stdout.strip()
        failed = celeriac("-A", "taskapp", "result", failed_id, "--wait", broker=sqlite_url)
        assert failed.stdout.splitlines()[:2] == ["FAILURE", "ValueError: kaboom"]
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0
    # With no worker: three messages wait, purge removes them.
    for _ in range(3):
        celeriac("-A", "taskapp", "call", "taskapp.add", "--args", "[1, 1]", broker=sqlite_url)
    refused = celeriac("-A", "taskapp", "purge", broker=sqlite_url, stdin="")
    assert refused.returncode == 2 and "without -f" in refused.stderr
    purged = celeriac("-A", "taskapp", "purge", "-f", broker=sqlite_url)
    assert purged.returncode == 0 and "Purged 3 messages" in purged.stdout


def test_banner_hides_the_broker_password(sqlite_url: str, tmp_path: Path) -> None:
    # A Redis URL with a password: the worker cannot connect (nothing listens on port 1), but the banner and
    # the connection error must never show the password.
    worker = WorkerProcess("redis://user:s3cret-pw@127.0.0.1:1/0", ["--pidfile", str(tmp_path / "w.pid")])
    try:
        worker.wait_for_output("redis://user:***@127.0.0.1:1/0")
        worker.wait_for_output("Cannot connect")
        assert (tmp_path / "w.pid").read_text().strip() == str(worker.proc.pid)
    finally:
        worker.signal(signal.SIGTERM)
        worker.wait()
    assert "s3cret-pw" not in worker.output
    assert not (tmp_path / "w.pid").exists()


def test_module_that_fails_to_import_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_tasks.py").write_text("raise RuntimeError('bad module')\n")
    done = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "broken_tasks", "worker"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "celeriac: error: -A broken_tasks: importing 'broken_tasks' failed: RuntimeError: bad module"
    )


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_worker_runs_tasks_on_either_event_loop(loop: str, sqlite_url: str) -> None:
    pytest.importorskip(loop)
    worker = WorkerProcess(sqlite_url, ["--loop", loop])
    try:
        worker.wait_for_output("ready.")
        assert re.search(rf"event loop +{loop}\b", worker.output), worker.output
        sent = celeriac("-A", "taskapp", "call", "taskapp.add", "--args", "[20, 22]", broker=sqlite_url)
        done = celeriac("-A", "taskapp", "result", sent.stdout.strip(), "--wait", "--timeout", "30", broker=sqlite_url)
        assert done.stdout.split() == ["SUCCESS", "42"], done.stderr
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.output
