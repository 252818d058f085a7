"""Every Control form of the dashboard against a real worker (the pytest plugin's worker thread on a temporary
SQLite broker): the worker applies it, the reply is shown, the action is audited; an operator cannot shut down."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient

from celeriac.app.app import App
from celeriac.dashboard.security import Access, parse_users
from celeriac.dashboard.store import EventStore
from celeriac.dashboard.web import Dashboard
from celeriac.worker import Worker

NODE = "forms@itest"


@pytest.fixture
def celery_worker_parameters() -> dict[str, Any]:
    return {"hostname": NODE, "concurrency": 2}


@pytest.fixture
def http(celery_app: App, celery_worker: Worker, tmp_path: Path) -> Iterator[TestClient]:
    store = EventStore(str(tmp_path / "history.sqlite"))
    access = Access(parse_users(["op:pw:operator", "root:pw:admin"]))
    dashboard = Dashboard(celery_app, store, access=access)
    with TestClient(dashboard.asgi) as client:
        yield client
    store.close()


def post(http: TestClient, user: str, command: str, **fields: str) -> str:
    auth = (user, "pw")
    token = http.get("/control", auth=auth).text.split('name="csrf" value="')[1].split('"')[0]
    answer = http.post(f"/control/{command}", auth=auth, data={"csrf": token, "destination": NODE, **fields})
    assert answer.status_code == 200, answer.text
    return answer.text


def eventually(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the worker did not apply the command"
        time.sleep(0.02)


def test_each_control_form_reaches_the_worker(celery_app: App, celery_worker: Worker, http: TestClient) -> None:
    @celery_app.task(name="forms.noop")
    def noop() -> None:
        pass

    assert "new rate limit set successfully" in post(http, "op", "rate_limit", task_name="forms.noop", rate_limit="5/s")
    eventually(lambda: celery_app.tasks["forms.noop"].rate_limit == "5/s")
    assert "unknown task" in post(http, "op", "rate_limit", task_name="forms.nope", rate_limit="5/s")
    assert "time limits set successfully" in post(http, "op", "time_limit", task_name="forms.noop", hard="9")
    eventually(lambda: celery_app.tasks["forms.noop"].time_limit == 9.0)
    assert "pool will grow" in post(http, "op", "pool_grow", n="1")
    eventually(lambda: celery_worker.concurrency == 3)
    assert "pool will shrink" in post(http, "op", "pool_shrink", n="1")
    eventually(lambda: celery_worker.concurrency == 2)
    assert "add consumer" in post(http, "op", "add_consumer", queue="extra").lower()
    eventually(lambda: "extra" in celery_worker.queues)
    assert "no longer consuming" in post(http, "op", "cancel_consumer", queue="extra")
    eventually(lambda: "extra" not in celery_worker.queues)
    assert "needs the admin role" in post(http, "op", "shutdown")
    audit = http.get("/audit", auth=("op", "pw")).text
    for command in ("rate_limit", "time_limit", "pool_grow", "pool_shrink", "add_consumer", "cancel_consumer"):
        assert command in audit
    assert "shutdown: []" in post(http, "root", "shutdown")  # a cast: workers never answer it
    eventually(lambda: celery_worker.shutting_down)
