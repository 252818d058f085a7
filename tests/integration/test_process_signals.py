"""Celery's process and logging signals in real processes: ``worker_process_init`` in every prefork child,
``after_setup_logger`` once the CLI set logging up, ``setup_logging`` replacing celeriac's own set-up, and
``beat_init`` when beat starts."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import HERE, LoggedProcess

from celeriac import App


def lines(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


def wait_lines(ledger: Path, prefix: str, count: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(found := [line for line in lines(ledger) if line.startswith(prefix)]) < count:
        assert time.monotonic() < deadline, f"{prefix!r}: {lines(ledger)}"
        time.sleep(0.05)
    return found


def test_process_logging_and_beat_signals(sqlite_url: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    env = {**os.environ, "PYTHONPATH": str(HERE), "CELERIAC_BROKER_URL": sqlite_url, "SIGNAL_LEDGER": str(ledger)}
    command = [sys.executable, "-m", "celeriac", "-A", "signals_app", "worker", "-P", "prefork", "-c", "2", "-B"]
    worker = LoggedProcess([*command, "-l", "info"], HERE, env)
    try:
        worker.wait_for_output("ready.")
        children = {int(line.split()[1]) for line in wait_lines(ledger, "process_init", 2)}
        assert worker.proc.pid not in children and len(children) == 2
        app = App("signals_app", broker=sqlite_url)
        assert app.send_task("signals_app.pid").get(timeout=30) in children  # the tasks ran in those children
        app.close()
        assert wait_lines(ledger, "after_setup_logger", 1) == ["after_setup_logger INFO 1"]
        assert wait_lines(ledger, "beat_init", 1) == ["beat_init Beat"]
    finally:
        worker.stop()
