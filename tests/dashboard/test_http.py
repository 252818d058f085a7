"""The dashboard over HTTP (Starlette's TestClient) against a real SQLite store and a real SQLite broker."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from celeriac.app.app import App
from celeriac.dashboard.security import Access, Redactor, parse_users
from celeriac.dashboard.store import EventStore, TaskFilter
from celeriac.dashboard.web import Dashboard


def failed_task(uuid: str = "t-1", name: str = "proj.add", t0: float | None = None) -> list[dict[str, Any]]:
    """The events of one task that failed on worker w1, as Celery's workers send them."""
    t0 = time.time() if t0 is None else t0
    return [
        {"type": "task-sent", "uuid": uuid, "name": name, "timestamp": t0, "queue": "celery", "hostname": "client"},
        {
            "type": "task-received",
            "uuid": uuid,
            "name": name,
            "args": "(1, 'x')",
            "kwargs": "{'token': 's3cret', 'n': 2}",
            "timestamp": t0 + 0.5,
            "hostname": "celery@w1",
            "root_id": uuid,
        },
        {"type": "task-started", "uuid": uuid, "timestamp": t0 + 1.0, "hostname": "celery@w1"},
        {
            "type": "task-failed",
            "uuid": uuid,
            "exception": "ValueError('boom')",
            "traceback": 'Traceback (most recent call last):\n  File "t.py"\nValueError: boom',
            "timestamp": t0 + 1.25,
            "hostname": "celery@w1",
        },
    ]


def heartbeat(hostname: str, ts: float | None = None) -> dict[str, Any]:
    return {
        "type": "worker-heartbeat",
        "hostname": hostname,
        "timestamp": time.time() if ts is None else ts,
        "freq": 2.0,
        "active": 1,
        "processed": 7,
        "loadavg": [0.5, 0.25, 0.1],
        "sw_ident": "py-celery",
        "sw_ver": "5.7.0",
    }


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "history.sqlite")


@pytest.fixture
def app(sqlite_url: str) -> App:
    return App("dash-test", broker=sqlite_url, set_as_current=False)


@pytest.fixture
def client(app: App, db: str) -> Iterator[tuple[TestClient, Dashboard]]:
    store = EventStore(db)
    dashboard = Dashboard(app, store)
    with TestClient(dashboard.asgi) as http:
        yield http, dashboard
    store.close()


def test_workers_and_tasks_pages_show_ingested_events(client: tuple[TestClient, Dashboard]) -> None:
    http, dashboard = client
    dashboard.store.ingest([heartbeat("celery@w1"), heartbeat("old@w2", time.time() - 3600), *failed_task()])
    page = http.get("/").text
    assert "celery@w1" in page and "online" in page
    assert "old@w2" in page and "offline" in page
    tasks = http.get("/tasks", params={"state": "FAILURE"}).text
    assert "t-1" in tasks and "proj.add" in tasks
    assert "t-1" not in http.get("/tasks", params={"state": "SUCCESS"}).text
    detail = http.get("/tasks/t-1").text
    assert "ValueError: boom" in detail
    for step in ("task-sent", "task-received", "task-started", "task-failed"):
        assert step in detail
    assert "queue wait: 1.000s" in detail
    assert http.get("/tasks/nope").status_code == 404


def test_list_filters_sorting_and_pages(client: tuple[TestClient, Dashboard]) -> None:
    http, dashboard = client
    t0 = time.time()
    for i in range(120):
        dashboard.store.ingest(failed_task(f"id-{i:03d}", "proj.even" if i % 2 == 0 else "proj.odd", t0 + i))
    page = http.get("/tasks", params={"name": "proj.odd"}).text
    assert "60 tasks, page 1 of 2" in page
    assert "id-119" in page and "id-001" not in page
    ascending = http.get("/tasks", params={"name": "proj.odd", "sort": "updated", "order": "asc"}).text
    assert "id-001" in ascending and "id-119" not in ascending
    assert "id-007" in http.get("/tasks", params={"uuid": "id-007"}).text
    assert "1 tasks" in http.get("/tasks", params={"uuid": "id-007"}).text
    assert "0 tasks" in http.get("/tasks", params={"text": "no-such-text"}).text
    assert "120 tasks" in http.get("/tasks", params={"text": "'x'"}).text
    assert "2 tasks" in http.get("/tasks", params={"since": t0 + 118.5}).text
    bad = http.get("/tasks", params={"sort": "args; drop table"})
    assert bad.status_code == 400 and "cannot sort by" in bad.text


def test_retry_resends_same_call_linked_and_audited(client: tuple[TestClient, Dashboard], app: App) -> None:
    http, dashboard = client
    dashboard.store.ingest(failed_task())
    token = csrf_of(http.get("/tasks/t-1").text)
    answer = http.post("/tasks/t-1/retry", data={"csrf": token}, follow_redirects=False)
    assert answer.status_code == 303 and "sent+again" in answer.headers["location"]
    resent = dashboard.store.related("t-1")["resent"]
    assert len(resent) == 1 and resent[0]["name"] == "proj.add"
    new = dashboard.store.task(resent[0]["uuid"])
    assert new is not None and new["retry_of"] == "t-1" and new["args"] == "(1, 'x')"
    assert dashboard.transport is not None
    import asyncio

    assert http.portal is not None
    depth = http.portal.call(dashboard.transport.size, "celery")
    assert depth == 1  # the re-sent message waits in the queue
    del asyncio
    audit = http.get("/audit").text
    assert "retry" in audit and "t-1" in audit


def test_post_without_csrf_is_refused(client: tuple[TestClient, Dashboard]) -> None:
    http, dashboard = client
    dashboard.store.ingest(failed_task())
    assert http.post("/tasks/t-1/retry", data={}).status_code == 403
    assert http.post("/tasks/t-1/retry", data={"csrf": "0" * 64}).status_code == 403
    assert dashboard.store.related("t-1")["resent"] == []


def test_roles(app: App, db: str) -> None:
    users = parse_users(["ann:pw:viewer", "op:pw2:operator", "root:pw:3:admin"])
    assert users["root"] == ("pw:3", "admin")
    store = EventStore(db)
    store.ingest(failed_task())
    dashboard = Dashboard(app, store, Access(users), listen=False)
    with TestClient(dashboard.asgi) as http:
        assert http.get("/").status_code == 401
        assert http.get("/", headers=basic("ann", "wrong")).status_code == 401
        viewer = http.get("/tasks/t-1", headers=basic("ann", "pw")).text
        assert 'id="retry"' not in viewer
        token = csrf_of(viewer)
        refused = http.post("/tasks/t-1/retry", data={"csrf": token}, headers=basic("ann", "pw"))
        assert refused.status_code == 403 and "role viewer" in refused.text
        operator = http.get("/tasks/t-1", headers=basic("op", "pw2")).text
        assert 'id="retry"' in operator
        purge = http.post("/queues/celery/purge", data={"csrf": csrf_of(operator)}, headers=basic("op", "pw2"))
        assert purge.status_code == 403  # purge is admin only
    store.close()


def test_auth_header_mode(app: App, db: str) -> None:
    store = EventStore(db)
    dashboard = Dashboard(app, store, Access(header="X-User", role_header="X-Role"), listen=False)
    with TestClient(dashboard.asgi) as http:
        assert http.get("/").status_code == 401
        page = http.get("/control", headers={"X-User": "kim", "X-Role": "operator"}).text
        assert "kim (operator)" in page and "pool_grow" in page and "shutdown" not in page
        assert "may look but not act" in http.get("/control", headers={"X-User": "kim"}).text
    store.close()


def test_redaction_before_storing(db: str) -> None:
    store = EventStore(db, redact=Redactor(("token", "secret.*")))
    store.ingest(failed_task())
    store.ingest(failed_task("t-2", "secret.task"))
    one, two = store.task("t-1"), store.task("t-2")
    assert one is not None and "s3cret" not in (one["kwargs"] or "") and "'n': 2" in (one["kwargs"] or "")
    assert two is not None and two["args"] == "***" and two["kwargs"] == "***"
    store.close()


def test_history_survives_restart_and_retention(db: str) -> None:
    store = EventStore(db, max_tasks=5, max_age=3600)
    t0 = time.time()
    for i in range(8):
        store.ingest(failed_task(f"r-{i}", t0=t0 + i))
    store.ingest(failed_task("ancient", t0=t0 - 7200))
    store.close()
    again = EventStore(db, max_tasks=5, max_age=3600)
    assert again.task("r-0") is not None and again.task("ancient") is not None  # nothing lost on restart
    removed = again.trim(now=t0 + 10)
    assert removed == 4
    rows, total = again.tasks(TaskFilter())
    assert total == 5 and {r["uuid"] for r in rows} == {f"r-{i}" for i in range(3, 8)}
    assert again.timeline("r-0") == [] and len(again.timeline("r-7")) == 4
    again.close()


def test_metrics_parse(client: tuple[TestClient, Dashboard]) -> None:
    http, dashboard = client
    dashboard.metrics.observe(dashboard.store.ingest([heartbeat("celery@w1"), *failed_task()]))
    received_again = {"type": "task-received", "uuid": "t-1", "timestamp": time.time() + 5, "hostname": "celery@w1"}
    dashboard.metrics.observe(dashboard.store.ingest([received_again]))
    text = http.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("celeriac_tasks_total", (("name", "proj.add"), ("state", "FAILURE")))] == 1
    assert samples[("celeriac_task_queue_wait_seconds_count", (("name", "proj.add"),))] == 1
    assert samples[("celeriac_task_queue_wait_seconds_sum", (("name", "proj.add"),))] == pytest.approx(1.0)
    assert samples[("celeriac_task_redeliveries_total", (("name", "proj.add"),))] == 1
    assert samples[("celeriac_workers_online", ())] == 1
    assert samples[("celeriac_queue_depth", (("queue", "celery"),))] == 0
    assert samples[("celeriac_dead_lettered", (("queue", "celery"),))] == 0
    assert http.get("/healthz").text == "ok"


def test_purge_needs_confirmation(client: tuple[TestClient, Dashboard], app: App) -> None:
    http, dashboard = client
    dashboard.store.ingest(failed_task())
    token = csrf_of(http.get("/queues").text)
    http.post("/tasks/t-1/retry", data={"csrf": token})
    assert http.portal is not None and dashboard.transport is not None
    assert http.portal.call(dashboard.transport.size, "celery") == 1
    refused = http.post("/queues/celery/purge", data={"csrf": token, "confirm": "nope"}, follow_redirects=False)
    assert "type+the+queue+name" in refused.headers["location"]
    assert http.portal.call(dashboard.transport.size, "celery") == 1
    http.post("/queues/celery/purge", data={"csrf": token, "confirm": "celery"})
    assert http.portal.call(dashboard.transport.size, "celery") == 0
    assert "purge" in http.get("/audit").text


def test_stream_announces_a_change(client: tuple[TestClient, Dashboard]) -> None:
    http, dashboard = client
    with http.stream("GET", "/stream", params={"max": "1"}) as events:
        lines = events.iter_lines()
        assert next(lines).startswith(": connected")
        dashboard.store.ingest(failed_task())
        data = [line for line in lines if line.startswith("data:")]
    assert data == [f"data: {dashboard.store.version}"]


def test_peek_and_oldest_age_on_sqlite(client: tuple[TestClient, Dashboard], app: App) -> None:
    http, dashboard = client
    dashboard.store.ingest(failed_task())
    token = csrf_of(http.get("/queues").text)
    http.post("/tasks/t-1/retry", data={"csrf": token})
    peek = http.get("/queues/celery").text
    assert "proj.add" in peek and "the oldest has waited" in peek
    assert http.portal is not None and dashboard.transport is not None
    assert http.portal.call(dashboard.transport.size, "celery") == 1  # peeking consumed nothing
    families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}
    ages = [s for s in families["celeriac_queue_oldest_age_seconds"].samples if s.labels == {"queue": "celery"}]
    assert len(ages) == 1 and ages[0].value >= 0


def test_peek_on_redis_honours_the_key_prefix(redis_url: str, prefix: str, db: str) -> None:
    app = App("dash-redis", broker=redis_url, set_as_current=False)
    app.conf.broker_transport_options = {"global_keyprefix": prefix}
    store = EventStore(db)
    store.ingest(failed_task())
    dashboard = Dashboard(app, store, listen=True)
    with TestClient(dashboard.asgi) as http:
        token = csrf_of(http.get("/queues").text)
        http.post("/tasks/t-1/retry", data={"csrf": token})
        new = store.related("t-1")["resent"][0]["uuid"]
        peek = http.get("/queues/celery").text
        assert new in peek and "proj.add" in peek
        queues = http.get("/queues").text
        assert re.search(r"<td>1</td>\s*<td>\d+\.\ds</td>", queues), queues
        assert http.portal is not None and dashboard.transport is not None
        assert http.portal.call(dashboard.transport.size, "celery") == 1
        http.post("/queues/celery/purge", data={"csrf": token, "confirm": "celery"})
    store.close()


def test_beat_page_lists_entries_and_the_leader(sqlite_url: str, tmp_path: Path, db: str) -> None:
    app = App("dash-beat", broker=sqlite_url, backend=f"sqlite:///{tmp_path / 'results.db'}", set_as_current=False)
    app.conf.beat_schedule = {"tick": {"task": "proj.tick", "schedule": 30.0}}
    store = EventStore(db)
    leader = {"type": "beat-leader", "holder": "gen1@host/ab12", "token": 3, "timestamp": time.time()}
    store.ingest([leader, {"type": "beat-fired", "entry": "tick", "uuid": "beat-1", "timestamp": time.time()}])
    dashboard = Dashboard(app, store, listen=False)
    with TestClient(dashboard.asgi) as http:
        page = http.get("/beat").text
    assert "gen1@host/ab12" in page and "token 3" in page
    assert "proj.tick" in page and "beat-1" in page and "tick" in page
    store.close()


def test_canvas_tree_by_root(client: tuple[TestClient, Dashboard]) -> None:
    http, dashboard = client
    t0 = time.time()
    events = []
    for uuid, parent, name in (("root", None, "proj.a"), ("kid", "root", "proj.b"), ("grandkid", "kid", "proj.c")):
        events.append(
            {"type": "task-received", "uuid": uuid, "name": name, "root_id": "root", "parent_id": parent,
             "timestamp": t0, "hostname": "w"}
        )  # fmt: skip
    dashboard.store.ingest(events)
    page = http.get("/canvas/root").text
    assert page.index("proj.a") < page.index("proj.b") < page.index("proj.c")
    assert "margin-left:3.0em" in page  # the grandchild is two levels down


def test_bulk_retry_by_filter(client: tuple[TestClient, Dashboard]) -> None:
    http, dashboard = client
    for i in range(3):
        dashboard.store.ingest(failed_task(f"b-{i}", "proj.bulk"))
    dashboard.store.ingest(failed_task("other", "proj.other"))
    token = csrf_of(http.get("/tasks").text)
    refused = http.post("/tasks/bulk-retry", data={"csrf": token, "name": "proj.bulk"}, follow_redirects=False)
    assert "failed+tasks+only" in refused.headers["location"]
    done = http.post(
        "/tasks/bulk-retry", data={"csrf": token, "state": "FAILURE", "name": "proj.bulk"}, follow_redirects=False
    )
    assert "sent+3+again" in done.headers["location"]
    assert all(dashboard.store.related(f"b-{i}")["resent"] for i in range(3))
    assert dashboard.store.related("other")["resent"] == []
    assert "bulk-retry" in http.get("/audit").text


def test_queue_page_on_rabbitmq_answers_from_the_history(amqp_url: str, db: str, queue_name: str) -> None:
    """RabbitMQ cannot be looked into without taking messages: the queue's next messages and the oldest one's
    age come from the tasks sent to it that no worker received, the queue's depth most recent of them."""
    app = App("dash-amqp", broker=amqp_url, set_as_current=False)
    store = EventStore(db)
    now = time.time()
    # A task sent long ago that never arrived (purged): older than what the queue holds, so never shown.
    store.ingest(
        [{"type": "task-sent", "uuid": "gone", "name": "proj.add", "timestamp": now - 900, "queue": queue_name}]
    )
    try:
        for n, uuid in enumerate(("first", "second")):
            app.send_task("proj.add", (n, n), task_id=uuid, queue=queue_name)
            store.ingest(
                [
                    {
                        "type": "task-sent",
                        "uuid": uuid,
                        "name": "proj.add",
                        "timestamp": now - 60 + n,
                        "queue": queue_name,
                    }
                ]
            )
        dashboard = Dashboard(app, store, listen=True)
        with TestClient(dashboard.asgi) as http:
            assert http.portal is not None and dashboard.transport is not None
            try:
                peek = http.get(f"/queues/{queue_name}").text
                assert "as the history knows them" in peek
                assert peek.index("first") < peek.index("second") and "gone" not in peek
                age = float(re.search(r"the oldest has waited ([\d.]+)s", peek).group(1))  # type: ignore[union-attr]
                assert 59 <= age < 120
                families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}
                ages = families["celeriac_queue_oldest_age_seconds"].samples
                ages = [s for s in ages if s.labels == {"queue": queue_name}]
                assert len(ages) == 1 and 59 <= ages[0].value < 120
                assert http.portal.call(dashboard.transport.size, queue_name) == 2  # nothing was taken
                unseen = f"{queue_name}-unseen"
                app.send_task("proj.add", (9, 9), queue=unseen)  # no task-sent event: the history cannot name it
                page = http.get(f"/queues/{unseen}").text
                assert "(1 messages not known from task-sent events)" in page and "has waited" not in page
            finally:  # the vhost is the whole run's: leave no message for a later test's worker
                for queue in (queue_name, f"{queue_name}-unseen"):
                    http.portal.call(dashboard.transport.purge, queue)
    finally:
        app.close()
        store.close()


def test_a_late_sent_event_does_not_undo_a_finished_task(db: str) -> None:
    """The producer's clock stamps task-sent after the publish returns; a fast worker may have finished by then."""
    store = EventStore(db)
    t0 = time.time()
    store.ingest(
        [
            {"type": "task-received", "uuid": "fast", "name": "proj.add", "timestamp": t0, "hostname": "w"},
            {"type": "task-succeeded", "uuid": "fast", "timestamp": t0 + 0.0001, "hostname": "w", "runtime": 0.0001},
        ]
    )
    store.ingest([{"type": "task-sent", "uuid": "fast", "name": "proj.add", "timestamp": t0 + 0.001, "queue": "q"}])
    row = store.task("fast")
    assert row is not None and row["state"] == "SUCCESS" and row["sent"] == t0 + 0.001 and row["queue"] == "q"
    # Within one batch too, and a retry's re-send keeps RETRY until the new attempt is received.
    store.ingest(
        [
            {"type": "task-retried", "uuid": "again", "name": "proj.add", "timestamp": t0, "hostname": "w"},
            {"type": "task-sent", "uuid": "again", "name": "proj.add", "timestamp": t0 + 0.01, "queue": "q"},
        ]
    )
    assert (store.task("again") or {})["state"] == "RETRY"
    store.ingest([{"type": "task-received", "uuid": "again", "timestamp": t0 + 0.02, "hostname": "w"}])
    assert (store.task("again") or {})["state"] == "RECEIVED"
    store.ingest([{"type": "task-sent", "uuid": "new", "name": "proj.add", "timestamp": t0, "queue": "q"}])
    assert (store.task("new") or {})["state"] == "PENDING"
    store.close()
