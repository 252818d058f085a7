"""Helpers of the autoscale, reload, shutdown and health tests: an app module written into the test's own
directory (so ``--reload`` can watch it), a worker subprocess started there, and a ledger of task runs.

Every app reads its broker from ``CELERIAC_BROKER_URL`` and puts its Redis keys under ``SCALE_KEYPREFIX``; extra
settings come as JSON in ``SCALE_SETTINGS``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from procs import LoggedProcess

SRC = Path(__file__).resolve().parents[2] / "src"

APP_SOURCE = '''
import asyncio
import json
import os
from pathlib import Path

from celeriac import App

app = App("scaleapp", broker="sqlite:///unused.db")
options = {"visibility_timeout": 3600.0}
if os.environ.get("SCALE_KEYPREFIX"):
    options["global_keyprefix"] = os.environ["SCALE_KEYPREFIX"]
app.conf.broker_transport_options = options
app.conf.update(json.loads(os.environ.get("SCALE_SETTINGS", "{}")))
LEDGER = Path(os.environ["SCALE_LEDGER"])


def record(line):
    with open(LEDGER, "a") as handle:
        handle.write(line + "\\n")


@app.task(acks_late=True)
async def hold(tag, release):
    """Runs until the file ``release`` exists (polled gently: a hundred of these run at once)."""
    record(f"start {tag}")
    while not os.path.exists(release):
        await asyncio.sleep(0.05)
    record(f"done {tag}")
    return tag


@app.task
def version():
    record(f"version {VERSION}")
    return VERSION


VERSION = "v1"
'''


def write_app(directory: Path, name: str = "scaleapp", source: str = APP_SOURCE) -> Path:
    """Write the app module ``name`` into ``directory``; returns its path."""
    path = directory / f"{name}.py"
    path.write_text(source)
    return path


class Ledger:
    """The file every task run appends ``start <tag>`` / ``done <tag>`` to (counts runs across processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self, word: str) -> Counter[str]:
        """How many times each tag logged ``word``."""
        if not self.path.exists():
            return Counter()
        lines = self.path.read_text().splitlines()
        return Counter(line.split()[1] for line in lines if line.startswith(word + " "))


class ScaleWorker(LoggedProcess):
    """``celeriac -A scaleapp worker`` run in ``directory`` (where the app module is)."""

    def __init__(
        self,
        directory: Path,
        broker_url: str,
        args: Sequence[str] = (),
        *,
        prefix: str = "",
        settings: dict[str, Any] | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        env = {
            **os.environ,
            "CELERIAC_BROKER_URL": broker_url,
            "PYTHONPATH": os.pathsep.join([str(directory), str(SRC)]),
            "SCALE_KEYPREFIX": prefix,
            "SCALE_SETTINGS": json.dumps(settings or {}),
            "SCALE_LEDGER": str((ledger or Ledger(directory / "ledger")).path),
        }
        env.pop("CELERIAC_RESULT_BACKEND", None)
        command = [sys.executable, "-m", "celeriac", "-A", "scaleapp", "worker", "-l", "info", *args]
        super().__init__(command, directory, env)


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.05)
