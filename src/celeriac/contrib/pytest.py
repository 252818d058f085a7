"""A pytest plugin with Celery's fixture names, so a test suite runs its tasks for real without a server.

Registered as a ``pytest11`` entry point (``celeriac``): installed celeriac makes the fixtures available; none
of them is used unless a test asks for it. Each test gets a fresh app on a temporary SQLite file (broker and
results) and, with ``celery_worker``, a real worker running in a background thread, on the threads pool.

Fixtures (Celery's names, and celeriac's ``celeriac_app``/``celeriac_worker`` for the same things):

* ``celery_config``: settings for the app (override it in your conftest: ``return {"task_acks_late": True}``);
* ``celery_parameters``: keyword arguments of ``App(...)``;
* ``celery_includes``: modules to import once the app exists (your task modules);
* ``celery_worker_pool`` (``"threads"``), ``celery_worker_parameters`` (``Worker`` options, e.g. concurrency);
* ``celery_app``: the app, current for the test; ``celery_worker``: the running worker (stopped after the test).

``@shared_task`` tasks register in it; tasks declared on another app instance run only if that instance is the one
the worker serves, so point ``celery_includes`` at modules using ``shared_task`` or ``current_app``.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from celeriac.app.app import App
from celeriac.app.current import app_scope
from celeriac.testing import start_worker
from celeriac.worker import Worker

START_TIMEOUT = 30.0


@pytest.fixture
def celery_config() -> Mapping[str, Any]:
    """Settings of the test app (empty: override it)."""
    return {}


@pytest.fixture
def celery_parameters() -> Mapping[str, Any]:
    """Keyword arguments of the test app's ``App(...)`` (empty: override it)."""
    return {}


@pytest.fixture
def celery_includes() -> Sequence[str]:
    """Modules imported once the test app exists (none: override it)."""
    return ()


@pytest.fixture
def celery_worker_pool() -> str:
    """The test worker's pool."""
    return "threads"


@pytest.fixture
def celery_worker_parameters() -> Mapping[str, Any]:
    """Options of the test worker (``Worker(...)``: concurrency, queues...)."""
    return {}


@pytest.fixture
def celery_app(
    tmp_path: Path,
    celery_config: Mapping[str, Any],
    celery_parameters: Mapping[str, Any],
    celery_includes: Sequence[str],
) -> Iterator[App]:
    """A fresh app on a temporary SQLite file (broker and results), current for the test."""
    database = tmp_path / "celeriac-test.db"
    params = {"broker": f"sqlite:///{database}", **celery_parameters}
    with app_scope():  # after the test, the apps current before it are current again
        app = App(params.pop("main", "celeriac.test"), **params)
        app.conf.update(dict(celery_config))
        app.set_current()
        for module in celery_includes:
            importlib.import_module(module)
        try:
            yield app
        finally:
            app.close()


@pytest.fixture
def celery_worker(
    celery_app: App, celery_worker_pool: str, celery_worker_parameters: Mapping[str, Any]
) -> Iterator[Worker]:
    """A real worker for ``celery_app`` in a background thread with its own event loop, started before the test
    and warmly stopped after it."""
    runner = _ThreadedWorker(celery_app, {"pool": celery_worker_pool, **celery_worker_parameters})
    worker = runner.start()
    try:
        yield worker
    finally:
        runner.stop()


@pytest.fixture
def celeriac_app(celery_app: App) -> App:
    """celeriac's name of `celery_app`."""
    return celery_app


@pytest.fixture
def celeriac_worker(celery_worker: Worker) -> Worker:
    """celeriac's name of `celery_worker`."""
    return celery_worker


class _ThreadedWorker:
    """`start_worker` on an event loop of its own thread, for sync and async tests alike."""

    def __init__(self, app: App, options: Mapping[str, Any]) -> None:
        self.app, self.options = app, dict(options)
        self._ready = threading.Event()
        self._worker: Worker | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="celeriac-test-worker", daemon=True)

    def start(self) -> Worker:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"the test worker did not start within {START_TIMEOUT}s")
        if self._error is not None:
            raise self._error
        assert self._worker is not None
        return self._worker

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # handed to the test's thread by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with start_worker(self.app, **self.options) as worker:
            self._worker = worker
            self._ready.set()
            await self._stop.wait()
        await self.app.aclose()
