"""The virtualenv celeriac's workers run from in the benchmarks: ``bench/.venv-user``, installed as the README
tells a user (``pip install -e '.[redis,amqp]'``), nothing else.

The project's own ``.venv`` holds the test extras (Celery, OpenTelemetry, Django, Playwright, ...); redis-py
imports OpenTelemetry when it is installed, which alone adds about 2 MiB to a worker's memory. A user's worker
has none of that, so its numbers are measured from an environment like a user's. `ensure` creates it on first
use and again whenever ``pyproject.toml`` changes (its hash is the marker).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-user"
MARKER = VENV / ".installed"
EXTRAS = "redis,amqp"


def python() -> Path:
    """The interpreter of the user environment."""
    return VENV / "bin" / "python"


def _stamp() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest() + f" [{EXTRAS}]"


def ensure() -> Path:
    """Create or refresh ``bench/.venv-user``; return its interpreter (blocks while pip runs, ~30 s at first)."""
    if MARKER.exists() and MARKER.read_text().strip() == _stamp() and python().exists():
        return python()
    print(f"creating {VENV} with celeriac[{EXTRAS}] ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(python()), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "-e", f"{ROOT}[{EXTRAS}]"], check=True)
    MARKER.write_text(_stamp() + "\n")
    return python()


if __name__ == "__main__":
    print(ensure())
