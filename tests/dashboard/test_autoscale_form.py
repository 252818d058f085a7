"""The dashboard's autoscale form against a real autoscaling worker (the pytest plugin's worker thread on a
temporary SQLite broker): the worker takes the new bounds and says so; a viewer cannot send it."""

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

NODE = "scaled@itest"


@pytest.fixture
def celery_worker_parameters() -> dict[str, Any]:
    return {"hostname": NODE, "autoscale": (3, 1)}


@pytest.fixture
def http(celery_app: App, celery_worker: Worker, tmp_path: Path) -> Iterator[TestClient]:
    store = EventStore(str(tmp_path / "history.sqlite"))
    dashboard = Dashboard(celery_app, store, access=Access(parse_users(["op:pw:operator", "eve:pw:viewer"])))
    with TestClient(dashboard.asgi) as client:
        yield client
    store.close()


def post(http: TestClient, user: str, **fields: str) -> str:
    token = http.get("/control", auth=(user, "pw")).text.split('name="csrf" value="')[1].split('"')[0]
    answer = http.post("/control/autoscale", auth=(user, "pw"), data={"csrf": token, "destination": NODE, **fields})
    assert answer.status_code in (200, 403), answer.text
    return answer.text


def test_autoscale_form_sets_the_workers_bounds(celery_worker: Worker, http: TestClient) -> None:
    assert celery_worker.autoscale == (3, 1)
    assert "autoscale now max=5 min=2" in post(http, "op", max="5", min="2")
    deadline = time.monotonic() + 10
    while celery_worker.autoscale != (5, 2):
        assert time.monotonic() < deadline, celery_worker.autoscale
        time.sleep(0.02)
    assert "autoscale" in http.get("/audit", auth=("op", "pw")).text
    post(http, "eve", max="9", min="1")
    assert celery_worker.autoscale == (5, 2)  # a viewer's form changed nothing
