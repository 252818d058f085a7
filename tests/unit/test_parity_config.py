"""Configuration as Celery projects write it: ``config_from_object`` (modules, ``module:attribute``, dicts,
classes; ``namespace="CELERY"``), ``config_from_envvar``, Celery's old upper-case names, ``autodiscover_tasks``,
``@shared_task``, ``task_annotations``."""

from __future__ import annotations

import contextvars
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import App, shared_task
from celeriac.app.current import forget_shared
from celeriac.errors import ConfigurationError, UnknownSetting


@pytest.fixture
def modules() -> Iterator[dict[str, types.ModuleType]]:
    """Register throw-away modules by name (removed afterwards)."""
    made: dict[str, types.ModuleType] = {}
    yield made
    for name in made:
        sys.modules.pop(name, None)


def module(made: dict[str, types.ModuleType], name: str, **attributes: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attributes)
    sys.modules[name] = made[name] = mod
    return mod


def test_namespace_reads_only_prefixed_names(modules: dict[str, types.ModuleType]) -> None:
    module(modules, "pc_settings", CELERY_TASK_DEFAULT_QUEUE="q", DEBUG=True, task_default_queue="ignored")
    app = App("ns")
    app.config_from_object("pc_settings", namespace="CELERY")
    assert app.conf.task_default_queue == "q"


def test_a_misspelt_namespaced_name_is_refused_with_a_suggestion() -> None:
    app = App("ns")
    with pytest.raises(UnknownSetting, match="'CELERY_TASK_ALWAYS_EGAER'; did you mean 'CELERY_TASK_ALWAYS_EAGER'"):
        app.config_from_object({"CELERY_TASK_ALWAYS_EGAER": True}, namespace="CELERY")


def test_module_attribute_strings_and_classes(modules: dict[str, types.ModuleType]) -> None:
    class Config:
        task_default_queue = "from-class"

    module(modules, "pc_holder", settings=Config)
    app = App("attr")
    app.config_from_object("pc_holder:settings")
    assert app.conf.task_default_queue == "from-class"
    with pytest.raises(ConfigurationError, match="has no attribute 'nope'"):
        app.config_from_object("pc_holder:nope")
    app.config_from_object("pc_does_not_exist", silent=True)
    with pytest.raises(ConfigurationError, match="cannot import config module"):
        app.config_from_object("pc_does_not_exist")


def test_old_upper_case_names_are_mapped_with_a_warning(modules: dict[str, types.ModuleType]) -> None:
    module(modules, "pc_old", CELERY_ALWAYS_EAGER=True, CELERYD_CONCURRENCY=3, SOME_CONSTANT=1)
    app = App("old")
    with pytest.warns(DeprecationWarning) as caught:
        app.config_from_object("pc_old")
    assert sorted(str(w.message) for w in caught) == [
        "setting CELERYD_CONCURRENCY is Celery's old name of worker_concurrency: use worker_concurrency",
        "setting CELERY_ALWAYS_EAGER is Celery's old name of task_always_eager: use task_always_eager",
    ]
    assert (app.conf.task_always_eager, app.conf.worker_concurrency) == (True, 3)
    with pytest.raises(ConfigurationError, match="CELERYBEAT_SCHEDULE \\(beat_schedule\\) is not supported"):
        app.config_from_object({"CELERYBEAT_SCHEDULE": {}})


def test_config_from_envvar(modules: dict[str, types.ModuleType], monkeypatch: pytest.MonkeyPatch) -> None:
    module(modules, "pc_env", task_default_queue="from-env")
    monkeypatch.setenv("PC_CONFIG", "pc_env")
    app = App("env")
    app.config_from_envvar("PC_CONFIG")
    assert app.conf.task_default_queue == "from-env"
    app.config_from_envvar("PC_UNSET", silent=True)
    with pytest.raises(ConfigurationError, match="'PC_UNSET' is not set"):
        app.config_from_envvar("PC_UNSET")


def test_autodiscover_imports_tasks_modules_at_finalize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for package in ("pc_pkg", "pc_empty"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "pc_pkg" / "tasks.py").write_text(
        "import celeriac\n\n@celeriac.get_current_app().task(name='pc.discovered')\ndef found():\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    app = App("disc")
    try:
        app.autodiscover_tasks(["pc_pkg", "pc_empty"])  # pc_empty has no tasks module: skipped
        assert "pc.discovered" not in app.tasks  # not before the app finalizes...
        app.finalize()
        assert "pc.discovered" in app.tasks  # ...then imported
        with pytest.raises(ConfigurationError, match=r"cannot import 'pc_missing\.tasks'"):
            app.autodiscover_tasks(["pc_missing"], force=True)
        with pytest.raises(ConfigurationError, match="needs the packages"):
            app.autodiscover_tasks(force=True)
    finally:
        for name in ("pc_pkg", "pc_pkg.tasks", "pc_empty"):
            sys.modules.pop(name, None)


def test_shared_tasks_register_on_every_app(sqlite_url: str) -> None:
    first = App("first", broker=sqlite_url, task_always_eager=True)

    @shared_task(name="pc.shared.double")
    def double(x: int) -> int:
        return 2 * x

    second = App("second", broker=sqlite_url, task_always_eager=True)  # created later: gets it at finalize
    assert "pc.shared.double" in first.tasks
    second.finalize()
    assert "pc.shared.double" in second.tasks and second.tasks["pc.shared.double"].app is second

    def use_second() -> None:
        second.set_current()
        assert double.delay(4).get() == 8
        assert double.app is second

    contextvars.copy_context().run(use_second)  # (set_current would outlive the test otherwise)
    assert double.name == "pc.shared.double" and double(5) == 10
    assert repr(double) == "<@shared_task: pc.shared.double>"
    forget_shared("pc.shared.double")  # not declared for the apps of later tests


def test_task_annotations_set_options_by_name_or_star(sqlite_url: str) -> None:
    class Slow:
        def annotate(self, task: Any) -> dict[str, Any] | None:
            return {"acks_late": True} if task.name.endswith("slow") else None

    app = App(
        "ann",
        broker=sqlite_url,
        task_annotations=[{"pc.fast": {"rate_limit": "10/s"}, "*": {"max_retries": 9}}, Slow()],
    )

    @app.task(name="pc.fast")
    def fast() -> None: ...

    @app.task(name="pc.slow")
    def slow() -> None: ...

    app.finalize()
    assert (fast.rate_limit, fast.max_retries, slow.max_retries, slow.acks_late) == ("10/s", 3, 9, True)

    @app.task(name="pc.late")
    def late() -> None: ...

    assert late.max_retries == 9  # registered after finalize: annotated at once
    bad = App("bad", broker=sqlite_url, task_annotations={"*": {"rate_limt": "1/s"}})
    bad.task(name="pc.any")(lambda: None)
    with pytest.raises(ConfigurationError, match="did you mean 'rate_limit'"):
        bad.finalize()
