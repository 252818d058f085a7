"""Typed settings with Celery's lowercase names; mutable until the app is finalized, then frozen.

Each setting is declared once on `Settings` as a `Setting` with its type, default and the runtime types it
accepts, so ``app.conf.broker_url`` type-checks as ``str | None``. ``app.conf`` offers attribute and mapping
access (``conf.broker_url``, ``conf["broker_url"]``) and ``update()``. An unknown name is a one-line
`UnknownSetting` naming it with the closest known name; a value of the wrong type is a one-line
`ConfigurationError` naming the setting.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from celeriac.errors import ConfigurationError, UnknownSetting
from celeriac.settings.amqp import AMQPSettings
from celeriac.settings.app import AppSettings
from celeriac.settings.beat import BeatSettings
from celeriac.settings.broker import BrokerSettings
from celeriac.settings.results import ResultSettings
from celeriac.settings.setting import Routes, Setting
from celeriac.settings.tasks import TaskSettings
from celeriac.settings.worker import WorkerSettings

ENVIRONMENT = {"CELERIAC_BROKER_URL": "broker_url", "CELERIAC_RESULT_BACKEND": "result_backend"}


# Numbers the wire or the broker limits: refused when set, not at every send that would carry them.
BOUNDS: dict[str, tuple[int, int]] = {"task_default_priority": (0, 255), "task_queue_max_priority": (1, 255)}


def _suggest(name: str) -> str | None:
    found = difflib.get_close_matches(name, OPTIONS, n=1)
    return found[0] if found else None


def check(name: str, value: Any) -> None:
    """Raise a one-line error when ``name`` is unknown or ``value`` has the wrong type."""
    option = OPTIONS.get(name)
    if option is None:
        raise UnknownSetting(name, _suggest(name))
    if not isinstance(value, option.types) or (isinstance(value, bool) and bool not in option.types):
        wanted = " or ".join(sorted(t.__name__ for t in option.types))
        raise ConfigurationError(f"setting {name!r} must be {wanted}, not {type(value).__name__} ({value!r})")
    bounds = BOUNDS.get(name)
    if bounds is not None and isinstance(value, int) and not bounds[0] <= value <= bounds[1]:
        raise ConfigurationError(f"setting {name!r} must be between {bounds[0]} and {bounds[1]}, not {value}")


class Settings(BrokerSettings, ResultSettings, TaskSettings, WorkerSettings, BeatSettings, AppSettings, AMQPSettings):
    """``app.conf``: every setting (declared with its type in the groups it derives from), by attribute or key.

    Frozen by `freeze`.

    Names are the lower-case ones; ``App.config_from_object`` maps a ``namespace`` (``CELERY_BROKER_URL``) and
    Celery's old upper-case names to them (`celeriac.app.config`).
    """

    __slots__ = ()

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_frozen", False)
        if values:
            self.update(values)

    def update(self, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Set several settings at once; checks every name and type before changing anything."""
        merged = {**(values or {}), **kwargs}
        for name, value in merged.items():
            check(name, value)
        self._ensure_mutable()
        self._values.update(merged)

    def apply_environment(self, environ: Mapping[str, str] = os.environ) -> None:
        """Let ``CELERIAC_BROKER_URL`` / ``CELERIAC_RESULT_BACKEND`` override the configured URLs."""
        for variable, name in ENVIRONMENT.items():
            if environ.get(variable):
                self[name] = environ[variable]

    def freeze(self) -> None:
        """Refuse changes from now on (the app is finalized: a message was sent or a worker started)."""
        object.__setattr__(self, "_frozen", True)

    @property
    def frozen(self) -> bool:
        """Whether changes are refused."""
        return bool(self._frozen)

    def _ensure_mutable(self) -> None:
        if self._frozen:
            raise ConfigurationError("app.conf is frozen once the app has sent a task or started a worker")

    def __getitem__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        option = OPTIONS.get(name)
        if option is None:
            raise UnknownSetting(name, _suggest(name))
        return option.default

    def __setitem__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __setattr__(self, name: str, value: Any) -> None:
        # Every attribute set is a setting: checked (name, type, frozen) by __setitem__.
        self[name] = value

    def __contains__(self, name: object) -> bool:
        return name in OPTIONS

    def __iter__(self) -> Iterator[str]:
        return iter(OPTIONS)

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default`` when the name is unknown."""
        return self[name] if name in OPTIONS else default

    def changes(self) -> dict[str, Any]:
        """The settings given explicitly (not defaults)."""
        return dict(self._values)

    def as_dict(self) -> dict[str, Any]:
        """Every setting with its current value."""
        return {name: self[name] for name in OPTIONS}


OPTIONS: dict[str, Setting[Any]] = {
    name: value for group in Settings.__mro__ for name, value in vars(group).items() if isinstance(value, Setting)
}
"""Every setting by name, in declaration order (group by group)."""

__all__ = ["OPTIONS", "Routes", "Setting", "Settings", "check"]
