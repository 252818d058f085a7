"""Result backend URL -> backend: one scheme table whose entries import their module only when used."""

from __future__ import annotations

from celeriac._schemes import SchemeEntry, redact_url, scheme_of
from celeriac.backends.base import BackendOptions, ResultBackend

_REDIS = SchemeEntry("celeriac.backends.redis.backend", "RedisBackend", extra="redis")

SCHEMES: dict[str, SchemeEntry] = {
    "sqlite": SchemeEntry("celeriac.backends.sqlite", "SQLiteBackend"),
    "redis": _REDIS,
    "rediss": _REDIS,
    "redis+socket": _REDIS,
    "rpc": SchemeEntry("celeriac.backends.rpc.backend", "RPCBackend", extra="amqp"),
}


def keeps_results(url: str) -> bool:
    """Whether ``url``'s scheme has a result backend, so a broker at ``url`` can keep the results too.

    Never raises: a URL without a known backend scheme answers False (so does ``rpc://``, which is no broker).
    """
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES and scheme.lower() != "rpc"


def backend_class(url: str) -> type[ResultBackend]:
    """The class `from_url` would make for ``url`` (its capabilities, without making one).

    Raises:
        ConfigurationError: as `from_url`.
    """
    scheme = scheme_of(url, SCHEMES, "result backend")
    found = SCHEMES[scheme].load(scheme, ResultBackend)
    assert isinstance(found, type) and issubclass(found, ResultBackend)  # checked by load()
    return found


def from_url(url: str, options: BackendOptions | None = None) -> ResultBackend:
    """A new, unconnected result backend for ``url``.

    Raises:
        ConfigurationError: unknown scheme (``unknown result backend scheme 'X'; did you mean 'Y'?``),
            a client library that is not installed, or a URL the backend cannot use.
    """
    scheme = scheme_of(url, SCHEMES, "result backend")
    make = SCHEMES[scheme].load(scheme, ResultBackend)
    backend: ResultBackend = make(url, options or BackendOptions())
    return backend


__all__ = ["SCHEMES", "backend_class", "from_url", "keeps_results", "redact_url"]
