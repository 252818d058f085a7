"""URL scheme tables: `SchemeEntry` (import a class only when its scheme is used), `scheme_of`, `redact_url`.

Shared by `celeriac.transports` and `celeriac.backends`, so neither package imports the other for them.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from celeriac._redact import redact_url
from celeriac.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class SchemeEntry:
    """Where the class for one URL scheme lives, and the extra that installs what it needs.

    ``unsupported`` names a scheme this version knows but cannot serve: `load` refuses it with that reason.
    """

    module: str
    cls: str
    extra: str | None = None
    unsupported: str | None = None

    def load(self, scheme: str, base: type[Any]) -> Callable[[str, Any], Any]:
        """Import the class: a constructor ``cls(url, options)``.

        Raises:
            ConfigurationError: the scheme is not supported yet, its module or client library is missing, or it
                is not a ``base``.
        """
        if self.unsupported is not None:
            raise ConfigurationError(self.unsupported)
        try:
            found = getattr(importlib.import_module(self.module), self.cls)
        except ImportError as exc:
            hint = f"; install it with: pip install 'celeriac[{self.extra}]'" if self.extra else ""
            raise ConfigurationError(f"scheme {scheme!r} is not available ({exc}){hint}") from exc
        if not (isinstance(found, type) and issubclass(found, base)):
            raise ConfigurationError(f"{self.module}.{self.cls} is not a {base.__name__}")
        return cast(Callable[[str, Any], Any], found)


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


__all__ = ["SchemeEntry", "redact_url", "scheme_of"]
