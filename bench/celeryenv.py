"""The separate virtualenv the Celery side of the benchmarks runs in: ``bench/.venv-celery`` with Celery 5.7.0.

Celery's worker and client run from their own environment, so nothing celeriac installs (or patches) can change
how Celery behaves, and the version under comparison is pinned here. `ensure` creates the environment on first
use and is a no-op afterwards (a marker file records the completed install).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-celery"
REQUIREMENT = "celery[redis]==5.7.0"
MARKER = VENV / ".installed"


def python() -> Path:
    """The interpreter of the Celery environment."""
    return VENV / "bin" / "python"


def celery() -> Path:
    """The ``celery`` command of the Celery environment."""
    return VENV / "bin" / "celery"


def ensure() -> Path:
    """Create ``bench/.venv-celery`` with `REQUIREMENT` unless it is there already; return its interpreter.

    Blocks while pip runs (a minute the first time). Raises CalledProcessError when venv or pip fails.
    """
    if MARKER.exists() and MARKER.read_text().strip() == REQUIREMENT and python().exists():
        return python()
    print(f"creating {VENV} with {REQUIREMENT} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(python()), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", REQUIREMENT], check=True)
    MARKER.write_text(REQUIREMENT + "\n")
    return python()


if __name__ == "__main__":
    print(ensure())
