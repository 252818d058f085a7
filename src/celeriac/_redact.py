"""Hide secrets before a value is shown (logs, ``inspect conf``, ``report``, ``stats``, error messages); no I/O.

- `redact_url`: the password of a URL (and secret-looking query items) replaced by ``***``, read from the raw
  string, never through ``urlsplit``: a password holding an unescaped ``#``, ``/``, ``?`` or ``@`` breaks URL
  parsing, and a parser that gives up must not print the URL whole. The user info is everything between
  ``scheme://`` and the *last* ``@``; when in doubt, more is hidden, never less.
- `redact`: any value (settings, transport options, nested dicts and lists at any depth) with the values of
  secret-looking keys masked and every URL in a string redacted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

MASK: Final = "********"
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
# Key names (of settings, options, query items) whose values are secrets; split into words on _ - . and case.
_SECRET_WORDS: Final = frozenset(
    {"password", "passwd", "pwd", "pass", "passphrase", "secret", "token", "key", "apikey", "signature",
     "credential", "credentials", "authorization", "private", "cookie"}
)  # fmt: skip
# Words that contain a secret word but name nothing secret.
_HARMLESS: Final = frozenset({"routing_key", "keyprefix", "global_keyprefix", "key_prefix", "keyfile", "ssl_keyfile"})
_WORD = re.compile(r"[A-Za-z][a-z0-9]*|[0-9]+")
_QUERY_ITEM = re.compile(r"([?&;])([^=&;#]+)=([^&;#]*)")


def is_secret_key(name: str) -> bool:
    """Whether a setting or option called ``name`` holds a secret (``password``, ``ssl_key_password``,
    ``apiToken``, ``secret_key``...), judged by its words; ``routing_key`` and file paths are not."""
    lowered = name.lower()
    if lowered in _HARMLESS or lowered.endswith(("routing_key", "_keyfile", "_certfile")):
        return False
    words = {word.lower() for part in re.split(r"[_\-.\s]+", name) for word in _WORD.findall(part)}
    return bool(words & _SECRET_WORDS) or any(
        secret in lowered for secret in ("password", "passwd", "secret", "token", "apikey")
    )


def _redact_one(url: str) -> str:
    """One ``scheme://...`` URL, redacted."""
    start = url.index("://") + 3
    at = url.rfind("@", start)
    if at >= 0:
        userinfo = url[start:at]
        user, colon, _ = userinfo.partition(":")
        if colon:
            url = f"{url[:start]}{user}:***{url[at:]}"
    return _QUERY_ITEM.sub(lambda m: f"{m.group(1)}{m.group(2)}=***" if is_secret_key(m.group(2)) else m.group(0), url)


def redact_url(url: str) -> str:
    """``url`` with its password (``user:password@``) and secret query items (``password=``, ``token=``...)
    replaced by ``***``; every other part kept as written. Several URLs in one string (a failover list) are
    each redacted; a string without ``://`` is returned unchanged."""
    starts = [m.start() for m in _URL_START.finditer(url)]
    if not starts:
        return url
    bounds = [*starts[1:], len(url)]
    return url[: starts[0]] + "".join(_redact_one(url[a:b]) for a, b in zip(starts, bounds, strict=True))


def redact(value: Any, key: str | None = None) -> Any:
    """``value`` safe to show: under a secret-looking ``key`` a non-empty value becomes `MASK`; inside dicts
    (at any depth) each value is judged by its own key, lists and tuples item by item; strings holding a URL
    are redacted. Other values are returned as they are (the caller makes them JSON-safe if it must)."""
    if key is not None and is_secret_key(key) and value not in (None, "", False, {}, [], ()):
        return MASK
    if isinstance(value, str):
        return redact_url(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item) for item in value]
    return value


__all__ = ["MASK", "is_secret_key", "redact", "redact_url"]
