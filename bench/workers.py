"""Start one worker process, celeriac's or Celery's, on a benchmark place.

The command lines are the documented ones, nothing tuned:

* celeriac: ``python -m celeriac -A benchapp worker -P <pool> -c <c> -l warning`` from ``bench/.venv-user``
  (installed as the README tells a user: `userenv`);
* Celery: ``celery -A celeryapp worker -P <pool> -c <c> -l warning`` from ``bench/.venv-celery``;
* Dramatiq (RabbitMQ only): ``dramatiq dramatiqapp --processes <cores> --threads <c>`` from ``bench/.venv-dramatiq``
  (its defaults: one process per core, 8 threads each).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import celeryenv
import dramatiqenv
import userenv
from brokers import Place
from procs import Managed

HERE = Path(__file__).resolve().parent
IMPLS = ("celeriac", "celery", "dramatiq")
POOLS = {
    "celeriac": ("asyncio", "threads", "solo", "prefork"),
    "celery": ("prefork", "threads", "solo"),
    "dramatiq": ("threads",),
}


@dataclass(frozen=True)
class WorkerSpec:
    """Which worker to run: implementation, pool and concurrency."""

    impl: str
    pool: str
    concurrency: int

    def __post_init__(self) -> None:
        if self.impl not in IMPLS:
            raise ValueError(f"--impl must be one of {IMPLS}, not {self.impl!r}")
        if self.pool not in POOLS[self.impl]:
            raise ValueError(f"{self.impl} has no pool {self.pool!r} (pools: {', '.join(POOLS[self.impl])})")

    @property
    def label(self) -> str:
        """``celeriac asyncio c=8``."""
        return f"{self.impl} {self.pool} c={self.concurrency}"

    def argv(self) -> list[str]:
        """The worker's command line."""
        common = ["worker", "-P", self.pool, "-c", str(self.concurrency), "-l", "warning"]
        if self.impl == "celeriac":
            return [str(userenv.python()), "-m", "celeriac", "-A", "benchapp", *common]
        if self.impl == "dramatiq":
            processes = str(os.cpu_count() or 2)
            threads = str(self.concurrency)
            return [str(dramatiqenv.dramatiq()), "dramatiqapp", "--processes", processes, "--threads", threads]
        return [str(celeryenv.celery()), "-A", "celeryapp", *common]


def clean_env(place: Place) -> dict[str, str]:
    """This environment, minus anything that would redirect the apps, plus the place's variables."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CELERIAC_", "CELERY_", "DRAMATIQ_"))}
    env.pop("VIRTUAL_ENV", None)
    # Some shells here set it; a user's machine caches compiled modules, and without the cache every worker start
    # compiles celeriac's ~440 modules again (about 0.17 s of a 0.45 s cold start on 2026-12-05).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(place.env())
    # The celeriac of this checkout, not whatever the virtualenv's editable install points at: a benchmark run
    # from a second worktree (an A/B comparison) must measure that worktree's code.
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent / "src")])
    return env


def start_worker(spec: WorkerSpec, place: Place) -> Managed:
    """Start the worker (its output goes to ``<workdir>/<impl>-worker.log``); the caller stops it."""
    if spec.impl == "celery":
        celeryenv.ensure()
        if place.kind == "sqlite":
            raise ValueError("the Celery worker runs on Redis or RabbitMQ only (Celery has no SQLite broker)")
    if spec.impl == "celeriac":
        userenv.ensure()
    if spec.impl == "dramatiq":
        dramatiqenv.ensure()
        if place.kind != "amqp":
            raise ValueError("the Dramatiq worker is measured on RabbitMQ only")
    log = place.workdir / f"{spec.impl}-{spec.pool}-worker.log"
    return Managed(spec.argv(), env=clean_env(place), cwd=HERE, log_path=log)
