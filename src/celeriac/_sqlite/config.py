"""What a ``sqlite://`` URL and its options say: the database file's path, numeric option values."""

from __future__ import annotations

import os
from typing import Any

from celeriac.errors import ConfigurationError

DEFAULT_PATH = "celeriac.db"


def database_path(url: str) -> str:
    """The absolute file path a ``sqlite://`` URL names.

    ``sqlite:///rel/x.db`` is relative to the current directory (resolved now, so a later chdir does not
    move the database), ``sqlite:////abs/x.db`` absolute, bare ``sqlite://`` is ``./celeriac.db``.

    Raises:
        ConfigurationError: not a sqlite URL, a host part, or an in-memory database (which other connections
            and processes could not share).
    """
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != "sqlite" or not sep:
        raise ConfigurationError(f"not a sqlite URL: {url!r}")
    rest = rest.split("?", 1)[0]
    if not rest:
        return os.path.abspath(DEFAULT_PATH)
    if not rest.startswith("/"):
        raise ConfigurationError(
            f"sqlite URL {url!r} has a host part; use sqlite:///relative.db or sqlite:////absolute.db"
        )
    path = rest[1:]
    if path in ("", ":memory:"):
        raise ConfigurationError(f"sqlite URL {url!r} names no file; an in-memory database cannot be shared")
    return os.path.abspath(path)


def located(url: str) -> str:
    """``url`` for people: a ``sqlite://`` URL gets the absolute path of its file after it, so a relative or
    default file (``./celeriac.db``) says where it is; any other URL (or a bad sqlite one) is returned as it is."""
    if not url.lower().startswith("sqlite:"):
        return url
    try:
        path = database_path(url)
    except ConfigurationError:
        return url
    return url if url.split("?", 1)[0].endswith("//" + path) else f"{url} ({path})"


def option_number(extra: dict[str, Any], key: str, default: float) -> float:
    """A numeric ``*_transport_options`` entry. Raises ConfigurationError naming the key if it is not."""
    value = extra.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"transport option {key!r} must be a number, not {value!r}")
    return float(value)
