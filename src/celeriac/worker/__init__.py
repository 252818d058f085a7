"""The worker: `Worker` (a blueprint of steps) and the `Step`/`Blueprint` users extend it with.

Short public paths (``from celeriac.worker import Worker, Step, Blueprint``); the modules below hold the parts:
``worker.py`` the Worker, ``steps.py`` its own steps, ``consumer/`` the broker-facing blueprint, ``tracer.py``
one request's run, ``strategy.py`` what happens to a message before it runs.
"""

from __future__ import annotations

from celeriac.worker.bootsteps import Blueprint, Step
from celeriac.worker.worker import Worker

__all__ = ["Blueprint", "Step", "Worker"]
