"""Finding task modules: ``app.autodiscover_tasks()`` imports ``<package>.tasks`` of each package (Django's
installed apps by default), and ``task_annotations`` sets task attributes by name, as in Celery."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.app.options import check_task_options
from celeriac.errors import ConfigurationError

if TYPE_CHECKING:
    from celeriac.app.task import Task

log = logging.getLogger("celeriac.app")

Packages = Sequence[str] | Callable[[], Sequence[str]] | None


def django_packages() -> list[str] | None:
    """The names of Django's installed apps when Django is configured in this process, else None."""
    if "django" not in sys.modules:
        return None
    try:
        from django.apps import apps  # type: ignore[import-not-found,import-untyped,unused-ignore]  # optional; only read when loaded
        from django.conf import settings  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None
    if not settings.configured:
        return None
    if apps.ready:
        return [config.name for config in apps.get_app_configs()]
    return [str(name) for name in settings.INSTALLED_APPS]


def discover(packages: Packages, related_name: str | None = "tasks") -> list[str]:
    """Import ``<package>.<related_name>`` of each package; return the modules imported.

    A package without that module is skipped (logged at debug, as most Django apps have no tasks); a package
    that cannot be imported, or an error inside a tasks module, is raised.
    """
    found = packages() if callable(packages) else packages
    if found is None:
        found = django_packages()
        if found is None:
            raise ConfigurationError("autodiscover_tasks() needs the packages to search (or a configured Django)")
    imported: list[str] = []
    for package in found:
        name = f"{package}.{related_name}" if related_name else package
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if related_name and exc.name == name:
                log.debug("autodiscover: %s has no %s module", package, related_name)
                continue
            raise ConfigurationError(f"autodiscover_tasks: cannot import {name!r}: {exc}") from None
        imported.append(name)
    return imported


def annotate(task: Task[Any, Any], annotations: Any) -> None:
    """Apply ``task_annotations`` to ``task``: dicts ``{task name or "*": {option: value}}`` (or a list of
    them, or objects with ``annotate(task)`` returning such a dict), tried in order; options are checked."""
    if annotations is None:
        return
    for entry in annotations if isinstance(annotations, list | tuple) else [annotations]:
        if isinstance(entry, Mapping):
            values = entry.get(task.name) or entry.get("*")
        elif callable(getattr(entry, "annotate", None)):
            values = entry.annotate(task)
        else:
            raise ConfigurationError(f"task_annotations entries are dicts or have annotate(task), not {entry!r}")
        if not values:
            continue
        check_task_options(values)
        for key, value in values.items():
            setattr(task, key, value)
