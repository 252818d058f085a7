"""The app of test_process_signals: receivers of the process and logging signals write to ``SIGNAL_LEDGER``."""

from __future__ import annotations

import logging
import os
from typing import Any

from celeriac import App, signals

app = App("signals_app")
app.conf.beat_schedule = {"tick": {"task": "signals_app.pid", "schedule": 3600.0}}
LEDGER = os.environ["SIGNAL_LEDGER"]


def note(text: str) -> None:
    with open(LEDGER, "a") as ledger:
        ledger.write(text + "\n")


@signals.worker_process_init.connect
def child_started(**_: Any) -> None:
    note(f"process_init {os.getpid()}")


@signals.after_setup_logger.connect
def logger_ready(logger: logging.Logger, loglevel: str, **_: Any) -> None:
    note(f"after_setup_logger {loglevel} {len(logger.handlers)}")


@signals.beat_init.connect
def beat_started(sender: Any, **_: Any) -> None:
    note(f"beat_init {type(sender).__name__}")


@app.task(name="signals_app.pid")
def pid() -> int:
    return os.getpid()
