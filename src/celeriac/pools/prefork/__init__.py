"""``-P prefork``: child processes run task bodies (see `pool.PreforkPool`)."""

from __future__ import annotations

from celeriac.pools.prefork.pool import PreforkPool

__all__ = ["PreforkPool"]
