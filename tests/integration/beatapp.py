"""The app of the beat tests' subprocesses: one entry every ``BEAT_EVERY`` seconds whose task appends its id and
run time to ``BEAT_LEDGER`` (a file every worker shares)."""

from __future__ import annotations

import os
import time

from celeriac import App

app = App("beatapp")
app.conf.beat_lease_seconds = float(os.environ.get("BEAT_LEASE", "1"))
app.conf.beat_schedule = {
    "tick": {"task": "beatapp.tick", "schedule": float(os.environ.get("BEAT_EVERY", "1")), "options": {"expires": 30}}
}
_prefix = os.environ.get("BEAT_PREFIX", "")  # a Redis test's own key namespace (broker and results)
app.conf.broker_transport_options = {"polling_interval": 0.02, **({"global_keyprefix": _prefix} if _prefix else {})}
if _prefix:
    app.conf.result_backend_transport_options = {"global_keyprefix": _prefix}


@app.task(bind=True, name="beatapp.tick")
def tick(self: object) -> None:
    request = self.request  # type: ignore[attr-defined]
    with open(os.environ["BEAT_LEDGER"], "a") as ledger:
        ledger.write(f"{request.id} {time.time():.3f} {request.origin}\n")
