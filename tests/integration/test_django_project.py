"""A Django project whose ``proj/celery.py`` is Celery's own but for the import (examples/django_proj): the worker
finds the app and the apps' tasks (``celeriac -A proj worker``), Django's side sends and reads results, and
``delay_on_commit`` sends only after a commit, never after a rollback. Django runs in subprocesses only, so its
global settings never leak into other tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import LoggedProcess

pytest.importorskip("django")

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django_proj"

ON_COMMIT = """
import django
from django.conf import settings
settings.configure(DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
django.setup()
from django.db import transaction
from celeriac import App

app = App("oncommit", broker="sqlite:///never-opened.db")
app.conf.task_always_eager = True
ran = []

@app.task
def mark(x):
    ran.append(x)

with transaction.atomic():
    mark.delay_on_commit(1)
    mark.apply_async_on_commit((2,))
    assert ran == [], ran  # not before the commit
assert ran == [1, 2], ran
try:
    with transaction.atomic():
        mark.delay_on_commit(3)
        raise RuntimeError("roll back")
except RuntimeError:
    pass
assert ran == [1, 2], ran  # never after a rollback
mark.delay_on_commit(4)  # no transaction: at once
assert ran == [1, 2, 4], ran
try:
    mark.delay_on_commit(1, 2)
except TypeError as exc:
    print("refused:", exc)
print("ON-COMMIT OK")
"""


def test_delay_on_commit_follows_the_transaction(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", ON_COMMIT], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "ON-COMMIT OK" in done.stdout and "refused: " in done.stdout


def test_the_sample_project_runs_on_celeriac(tmp_path: Path) -> None:
    project = tmp_path / "django_proj"
    shutil.copytree(SAMPLE, project, ignore=shutil.ignore_patterns("*.db*", "db.sqlite3", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERIAC_")}
    env.update(PYTHONPATH=str(project), PROJ_BROKER_URL=f"sqlite:///{tmp_path / 'broker.db'}")
    worker = LoggedProcess([sys.executable, "-m", "celeriac", "-A", "proj", "worker", "-l", "info"], project, env)
    try:
        worker.wait_for_output("ready.")
        assert "demoapp.tasks.add" in worker.output and "proj.celery.debug_task" in worker.output
        script = (
            "from demoapp.tasks import add, count_apps; "
            "print('RESULTS', add.delay(2, 3).get(timeout=30), count_apps.delay().get(timeout=30))"
        )
        shell = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert shell.returncode == 0, shell.stderr
        assert "RESULTS 5 2" in shell.stdout, shell.stdout
    finally:
        worker.stop()
