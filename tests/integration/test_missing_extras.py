"""Asking for metrics or tracing without their libraries installed is a one-line error naming the extra to
install, not a traceback and not a worker that runs without them (the modules are hidden in a real worker
process, as on a machine without the extras)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HIDE_AND_RUN = """
import sys
for name in {hidden!r}:
    sys.modules[name] = None  # an import of it now fails as if it were not installed
sys.argv = ["celeriac", *{argv!r}]
from celeriac.cli.main import entry
entry()
"""


def run(tmp_path: Path, hidden: list[str], argv: list[str], setup: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "extrasapp.py").write_text(
        textwrap.dedent(f"""
        from celeriac import App
        app = App("extrasapp", broker="sqlite:///{tmp_path / "broker.db"}")
        {setup}
        """)
    )
    script = HIDE_AND_RUN.format(hidden=hidden, argv=argv)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("hidden", "argv", "setup", "wanted"),
    [
        (
            ["prometheus_client"],
            ["-A", "extrasapp", "worker", "--metrics-port", "0"],
            "",
            "--metrics-port needs prometheus-client: pip install 'celeriac[metrics]'",
        ),
        (
            ["opentelemetry"],
            ["-A", "extrasapp", "worker"],
            "app.conf.tracing_enabled = True",
            "tracing_enabled needs OpenTelemetry: pip install 'celeriac[otel]'",
        ),
    ],
    ids=["metrics", "tracing"],
)
def test_a_missing_extra_is_a_one_line_start_up_error(
    tmp_path: Path, hidden: list[str], argv: list[str], setup: str, wanted: str
) -> None:
    done = run(tmp_path, hidden, argv, setup)
    assert done.returncode != 0, done.stdout + done.stderr
    assert wanted in done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert len([line for line in done.stderr.splitlines() if wanted in line]) == 1
