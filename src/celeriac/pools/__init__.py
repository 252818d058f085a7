"""Pools: where task bodies run, each fed `Call`s. ``by_name`` turns the ``-P`` value into a pool class, lazily."""

from __future__ import annotations

import difflib
import importlib

from celeriac.errors import ConfigurationError
from celeriac.pools.base import Pool
from celeriac.pools.call import Call

_POOLS = {
    "asyncio": "celeriac.pools.aio:AsyncioPool",
    "threads": "celeriac.pools.threads:ThreadPool",
    "solo": "celeriac.pools.solo:SoloPool",
    "prefork": "celeriac.pools.prefork:PreforkPool",
}


def by_name(name: str) -> type[Pool]:
    """The pool class for ``-P name``; a one-line ConfigurationError with a suggestion when unknown."""
    target = _POOLS.get(name)
    if target is None:
        close = difflib.get_close_matches(name, _POOLS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (choose from {', '.join(_POOLS)})"
        raise ConfigurationError(f"unknown pool {name!r}{hint}")
    module, _, attr = target.partition(":")
    cls: type[Pool] = getattr(importlib.import_module(module), attr)
    return cls


__all__ = ["Call", "Pool", "by_name"]
