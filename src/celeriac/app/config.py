"""Reading configuration: setting values the types allow but celeriac cannot honour are refused with a one-line
reason (never ignored); config objects (modules, classes, dicts, Django's settings) with or without a namespace,
and Celery's old upper-case names."""

from __future__ import annotations

import datetime as dt
import difflib
import importlib
import types
import warnings
import zoneinfo
from collections.abc import Mapping
from typing import Any

from celeriac.app.oldnames import OLD_NAMES
from celeriac.errors import ConfigurationError, UnknownSetting
from celeriac.settings import OPTIONS, Settings


def check_values(conf: Settings) -> None:
    """Raise ConfigurationError for the first setting whose value celeriac cannot honour."""
    if conf.task_protocol != 2:
        raise ConfigurationError(
            f"task_protocol={conf.task_protocol!r} is not supported: celeriac sends protocol 2 (Celery 4+); "
            "its workers still read protocol 1 messages"
        )
    if not conf.enable_utc:
        raise ConfigurationError(
            "enable_utc=False is not supported: celeriac keeps every time in UTC "
            "(set timezone to say how naive ETAs and expiry times are read)"
        )
    zone(conf.timezone)


def zone(name: str) -> dt.tzinfo:
    """The time zone ``name`` (the ``timezone`` setting); ConfigurationError for one this system lacks."""
    if name.upper() == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"setting 'timezone': unknown time zone {name!r}") from None


def load_object(obj: object | str) -> object:
    """``obj`` itself, or the module (``"proj.settings"``) or attribute of one (``"django.conf:settings"``) a
    string names."""
    if not isinstance(obj, str):
        return obj
    module_name, _, attribute = obj.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import config module {module_name!r}: {exc}") from None
    if not attribute:
        return module
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigurationError(f"config module {module_name!r} has no attribute {attribute!r}") from None


def _items(source: object) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return {str(key): value for key, value in source.items()}
    found: dict[str, Any] = {}
    for key in dir(source):
        if key.startswith("_"):
            continue
        value = getattr(source, key)
        if not callable(value) and not isinstance(value, types.ModuleType):
            found[key] = value
    return found


def settings_from(source: object, namespace: str | None = None) -> dict[str, Any]:
    """The settings a config object holds, by celeriac's (lower-case) names.

    With ``namespace`` (Django's ``"CELERY"``): only ``CELERY_<NAME>`` keys, read as ``<name>``; an unknown one is
    an error naming the closest known key. Without: lower-case names as they are; Celery's old upper-case names
    (``BROKER_URL``, ``CELERY_ALWAYS_EAGER``...) mapped to the new ones with a DeprecationWarning, refused when
    celeriac has no such setting; other upper-case names are the module's own constants, not settings.
    """
    values: dict[str, Any] = {}
    items = _items(source)
    if namespace:
        prefix = f"{namespace}_"
        for key, value in items.items():
            if not key.startswith(prefix):
                continue
            name = key[len(prefix) :].lower()
            if name not in OPTIONS:
                found = difflib.get_close_matches(name, OPTIONS, n=1)
                raise UnknownSetting(key, f"{prefix}{found[0].upper()}" if found else None)
            values[name] = value
        return values
    for key, value in items.items():
        if key.islower():
            values[key] = value
        elif key in OLD_NAMES:
            name = OLD_NAMES[key]
            if name not in OPTIONS:
                raise ConfigurationError(f"Celery setting {key} ({name}) is not supported by celeriac")
            warnings.warn(f"setting {key} is Celery's old name of {name}: use {name}", DeprecationWarning, 3)
            values[name] = value
    return values
