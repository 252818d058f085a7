"""The celeriac worker of the dashboard's end-to-end test (broker and key prefix from the environment)."""

from __future__ import annotations

import os

from celeriac import App

app = App("dashapp", broker=os.environ["DASH_BROKER"])
app.conf.broker_transport_options = {"global_keyprefix": os.environ["DASH_PREFIX"]}
app.conf.worker_heartbeat_interval = 1.0


@app.task(name="dash.fail")
def fail(x: int, label: str = "") -> int:
    raise ValueError(f"dashboard boom {x} {label}")


@app.task(name="dash.ok")
def ok(x: int) -> int:
    return x
