"""Broker URL -> transport: one scheme table whose entries import their module only when used.

``from_url("sqlite://")`` works with no extras installed; ``redis://`` and ``amqp://`` import their client
libraries only when such a URL is used, and a missing library is a one-line `ConfigurationError`.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from celeriac.errors import ConfigurationError
from celeriac.transports.base import Transport, TransportOptions


@dataclass(frozen=True, slots=True)
class SchemeEntry:
    """Where the class for one URL scheme lives, and the extra that installs what it needs."""

    module: str
    cls: str
    extra: str | None = None

    def load(self, scheme: str, base: type[Any]) -> Callable[[str, Any], Any]:
        """Import the class: a constructor ``cls(url, options)``.

        Raises:
            ConfigurationError: its module or client library is missing, or it is not a ``base``.
        """
        try:
            found = getattr(importlib.import_module(self.module), self.cls)
        except ImportError as exc:
            hint = f"; install it with: pip install 'celeriac[{self.extra}]'" if self.extra else ""
            raise ConfigurationError(f"scheme {scheme!r} is not available ({exc}){hint}") from exc
        if not (isinstance(found, type) and issubclass(found, base)):
            raise ConfigurationError(f"{self.module}.{self.cls} is not a {base.__name__}")
        return cast(Callable[[str, Any], Any], found)


_SQLITE = SchemeEntry("celeriac.transports.sqlite", "SQLiteTransport")
_REDIS = SchemeEntry("celeriac.transports.redis", "RedisTransport", extra="redis")
_AMQP = SchemeEntry("celeriac.transports.amqp", "AMQPTransport", extra="amqp")

SCHEMES: dict[str, SchemeEntry] = {
    "sqlite": _SQLITE,
    "redis": _REDIS,
    "rediss": _REDIS,
    "redis+socket": _REDIS,
    "amqp": _AMQP,
    "amqps": _AMQP,
    "pyamqp": _AMQP,
}


def scheme_of(url: str, table: dict[str, SchemeEntry], what: str) -> str:
    """The scheme of ``url``, checked against ``table``.

    Raises:
        ConfigurationError: no scheme, or an unknown one (naming the closest known scheme).
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme:
        raise ConfigurationError(f"{what} URL {redact_url(url)!r} has no scheme (like sqlite:// or redis://)")
    if scheme not in table:
        close = difflib.get_close_matches(scheme, list(table), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(table))}"
        raise ConfigurationError(f"unknown {what} scheme {scheme!r}; {hint}")
    return scheme


def from_url(url: str, options: TransportOptions | None = None) -> Transport:
    """A new, unconnected transport for the broker ``url`` names.

    Raises:
        ConfigurationError: unknown scheme (``unknown broker scheme 'X'; did you mean 'Y'?``), a client
            library that is not installed, or a URL the transport cannot use.
    """
    scheme = scheme_of(url, SCHEMES, "broker")
    make = SCHEMES[scheme].load(scheme, Transport)
    transport: Transport = make(url, options or TransportOptions())
    return transport


def redact_url(url: str) -> str:
    """``url`` with any password (``user:password@`` or a ``password=`` query item) replaced by ``***``,
    safe to log; every other part is kept exactly as written."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    redacted = url
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        start = url.index(parts.netloc)
        redacted = url[:start] + f"{user}:***@" + url[start + len(userinfo) + 1 :]
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", redacted, flags=re.IGNORECASE)


__all__ = ["SCHEMES", "SchemeEntry", "from_url", "redact_url", "scheme_of"]
