"""Find the App named by ``-A``: ``module``, ``module:attribute`` or ``package.module.attribute``."""

from __future__ import annotations

import importlib
import os
import sys

from celeriac.app.app import App
from celeriac.errors import ConfigurationError


def load_app(spec: str | None) -> App:
    """Import the app ``spec`` names (the current directory is importable, as for Celery)."""
    if not spec:
        raise ConfigurationError("no app given: use -A MODULE (e.g. -A tasks)")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not attr and "." in module_name and exc.name == module_name:
            # `-A pkg.mod.app`: the last part may be an attribute
            module_name, _, attr = module_name.rpartition(".")
            return load_app(f"{module_name}:{attr}")
        raise ConfigurationError(f"-A {spec}: cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # the user's module itself failed
        raise ConfigurationError(f"-A {spec}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, App):
            raise ConfigurationError(f"-A {spec}: {module_name}.{attr} is not a celeriac App")
        return found
    for name in ("app", "celery", "celeriac"):
        found = getattr(module, name, None)
        if isinstance(found, App):
            return found
    apps = [value for value in vars(module).values() if isinstance(value, App)]
    if len(apps) == 1:
        return apps[0]
    raise ConfigurationError(f"-A {spec}: no celeriac App found in {module_name!r} (name it 'app')")
