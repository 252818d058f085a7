"""``celeriac report`` (versions and settings, secrets hidden) and ``celeriac shell`` (the app and its tasks at
hand), run as a user runs them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cli import celeriac


def test_report_hides_secrets() -> None:
    done = celeriac("-A", "taskapp", "report", broker="redis://:s3cret@127.0.0.1:6379/9")
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout and "broker: redis://:***@127.0.0.1:6379/9" in done.stdout
    assert (
        "celeriac: " in done.stdout and "packages: redis " in done.stdout and "broker_transport_options" in done.stdout
    )


def test_shell_has_the_app_and_its_tasks(sqlite_url: str) -> None:
    script = "print('ANSWER', add(2, 3), app.main, sorted({'chain', 'group', 'chord'} & set(dir())))\n"
    done = celeriac("-A", "taskapp", "shell", "--python", broker=sqlite_url, stdin=script)
    assert done.returncode == 0, done.stderr
    assert "ANSWER 5 taskapp ['chain', 'chord', 'group']" in done.stdout, done.stdout
