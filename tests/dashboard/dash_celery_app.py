"""The real Celery 5.7 worker of the dashboard's end-to-end test (broker and key prefix from the environment)."""

from __future__ import annotations

import os

from celery import Celery  # type: ignore[import-untyped]

app = Celery("dashcelery", broker=os.environ["DASH_BROKER"])
app.conf.broker_transport_options = {"global_keyprefix": os.environ["DASH_PREFIX"]}
app.conf.worker_send_task_events = True
app.conf.broker_connection_retry_on_startup = True


@app.task(name="dash.celery_ok")  # type: ignore[untyped-decorator]
def celery_ok(x: int) -> int:
    return x
