"""The public surface is pinned: a name added to or dropped from ``celeriac.__all__`` is a deliberate change."""

from __future__ import annotations

import contextvars
import importlib

import celeriac
import celeriac.app
import celeriac.testing

PUBLIC = [
    "App",
    "AsyncResult",
    "CanvasError",
    "CeleriacError",
    "Celery",
    "ChordError",
    "ConfigurationError",
    "Exchange",
    "GroupResult",
    "Ignore",
    "MaxRetriesExceededError",
    "Queue",
    "Reject",
    "RemoteError",
    "ResultSet",
    "Retry",
    "Signature",
    "State",
    "Task",
    "TaskRevokedError",
    "TimeoutError",
    "UnknownTask",
    "__version__",
    "chain",
    "chord",
    "chunks",
    "current_app",
    "get_current_app",
    "group",
    "shared_task",
    "signature",
    "xmap",
    "xstarmap",
]


def test_all_is_pinned() -> None:
    assert celeriac.__all__ == PUBLIC


def test_every_public_name_is_importable_from_the_package() -> None:
    for name in celeriac.__all__:
        if name != "current_app":  # looked up on access: the app current in this context (tested below)
            assert getattr(celeriac, name) is not None, name


def test_short_paths_name_the_same_objects() -> None:
    assert celeriac.app.__all__ == ["App", "AsyncResult", "Task", "get_current_app"]
    for name in celeriac.app.__all__:
        assert getattr(celeriac.app, name) is getattr(celeriac, name)
    assert celeriac.App is importlib.import_module("celeriac.app.app").App
    assert callable(celeriac.testing.start_worker) and callable(celeriac.testing.wait_for)


def test_celery_exception_module_names_the_same_classes() -> None:
    import celeriac.errors
    import celeriac.exceptions

    for name in celeriac.errors.__all__:
        assert getattr(celeriac.exceptions, name) is getattr(celeriac.errors, name), name
    assert celeriac.exceptions.NotRegistered is celeriac.errors.UnknownTask
    assert set(celeriac.exceptions.__all__) == {*celeriac.errors.__all__, "NotRegistered"}


def test_current_app_follows_the_current_app() -> None:
    def check() -> None:
        app = celeriac.App("public-api")
        other = celeriac.App("public-api-2")  # the last one created is the default...
        assert celeriac.current_app is other
        app.set_current()  # ...unless one is set for this context
        assert celeriac.current_app is app

    contextvars.copy_context().run(check)


def test_celerys_spellings_name_celeriacs_objects() -> None:
    assert celeriac.Celery is celeriac.App
    from celeriac.app.shared import shared_task

    assert celeriac.shared_task is shared_task
