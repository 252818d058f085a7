"""A Celery project runs on celeriac by changing only its import: Django-style namespaced settings,
``autodiscover_tasks``, ``@shared_task``, a base Task class with hooks, signals, ``update_state`` progress,
``task_annotations``, eager runs for its own tests, and a real worker (SQLite broker).

The project is written below as Celery code with ``{lib}`` where it says ``celery``; the test writes it with
``celeriac`` and imports it, as a user's project would be.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import App
from celeriac.app.current import forget_shared
from celeriac.testing import start_worker, wait_for

PROJECT = {
    "proj/__init__.py": "",
    "proj/settings.py": """
import os

SECRET_KEY = "not a setting"  # a Django setting: not CELERY_-prefixed, not read
CELERY_BROKER_URL = os.environ["PARITY_BROKER"]
CELERY_TASK_DEFAULT_QUEUE = "proj"
CELERY_TASK_ANNOTATIONS = {"proj.billing.tasks.charge": {"rate_limit": "1000/s"}}
""",
    "proj/celery.py": """
from {lib} import Celery

app = Celery("proj")
app.config_from_object("proj.settings", namespace="CELERY")
app.autodiscover_tasks(lambda: ["proj.billing", "proj.reports"])
""",
    "proj/billing/__init__.py": "",
    "proj/billing/tasks.py": """
import threading

from {lib} import Task, shared_task
from {lib}.signals import task_success

AUDIT = []
SUCCESSES = []
RELEASE = threading.Event()


class Audited(Task):
    def on_success(self, retval, task_id, args, kwargs):
        AUDIT.append(("ok", retval))

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        AUDIT.append(("failed", repr(exc)))


@task_success.connect
def record(sender=None, result=None, **kwargs):
    SUCCESSES.append(result)


@shared_task(base=Audited)
def charge(cents):
    if cents < 0:
        raise ValueError("negative amount")
    return cents * 100


@shared_task(bind=True)
def export(self, rows):
    for done in range(1, rows + 1):
        self.update_state(state="PROGRESS", meta={"done": done, "total": rows})
    RELEASE.wait(30)
    return rows
""",
    "proj/reports/__init__.py": "",  # an app without a tasks module: skipped by autodiscover
}


@pytest.fixture
def project(tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, text in PROJECT.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("{lib}", "celeriac"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PARITY_BROKER", sqlite_url)
    module = importlib.import_module("proj.celery")
    yield module
    for name in [name for name in sys.modules if name == "proj" or name.startswith("proj.")]:
        del sys.modules[name]
    for task in ("charge", "export"):
        forget_shared(f"proj.billing.tasks.{task}")


def tasks_module() -> Any:
    return importlib.import_module("proj.billing.tasks")


def test_the_app_reads_namespaced_settings_and_finds_the_shared_tasks(project: Any) -> None:
    app: App = project.app
    assert (app.conf.broker_url, app.conf.task_default_queue) == (os.environ["PARITY_BROKER"], "proj")
    app.finalize()
    assert {"proj.billing.tasks.charge", "proj.billing.tasks.export"} <= set(app.tasks.names())
    charge = app.tasks["proj.billing.tasks.charge"]
    assert charge.rate_limit == "1000/s"  # task_annotations
    assert type(charge).__name__ == "Audited"


def test_the_projects_own_eager_tests_run(project: Any) -> None:
    app: App = project.app
    app.conf.task_always_eager = True
    tasks = tasks_module()
    assert tasks.charge.delay(3).get() == 300
    failed = tasks.charge.delay(-1)
    assert failed.failed() and isinstance(failed.result, ValueError)
    assert tasks.AUDIT == [("ok", 300), ("failed", "ValueError('negative amount')")]
    app.conf.task_eager_propagates = True
    with pytest.raises(ValueError, match="negative amount"):
        tasks.charge.delay(-1)


async def test_a_worker_runs_the_project(project: Any) -> None:
    app: App = project.app
    tasks = tasks_module()
    async with start_worker(app, queues=["proj"]):
        assert await (await tasks.charge.adelay(2)).aget(timeout=10) == 200
        export = await tasks.export.adelay(3)
        try:

            async def all_rows_done() -> bool:
                meta = await export.ameta()
                return meta["status"] == "PROGRESS" and meta["result"] == {"done": 3, "total": 3}

            await wait_for(all_rows_done)  # the body still runs: its last update_state is what is stored
        finally:
            tasks.RELEASE.set()
        assert await export.aget(timeout=10) == 3
        await wait_for(lambda: tasks.SUCCESSES == [200, 3] and tasks.AUDIT == [("ok", 200)])
    await app.aclose()
