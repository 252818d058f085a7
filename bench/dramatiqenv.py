"""The separate virtualenv Dramatiq runs in for the RabbitMQ comparison: ``bench/.venv-dramatiq``.

As for Celery (`celeryenv`): Dramatiq's worker and client run from their own environment, pinned here, created on
first use (a marker file records the completed install).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-dramatiq"
REQUIREMENT = "dramatiq[rabbitmq,redis]==2.2.1"
MARKER = VENV / ".installed"


def python() -> Path:
    """The interpreter of the Dramatiq environment."""
    return VENV / "bin" / "python"


def dramatiq() -> Path:
    """The ``dramatiq`` command of the Dramatiq environment."""
    return VENV / "bin" / "dramatiq"


def ensure() -> Path:
    """Create ``bench/.venv-dramatiq`` with `REQUIREMENT` unless it is there already; return its interpreter."""
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
