"""Redis URLs: which schemes and query options celeriac accepts, checked once; redaction; redis-py's form.

``redis://[[user]:password@]host[:port][/db][?option=value...]``, ``rediss://`` (TLS, which also takes the ``ssl_*``
options), and kombu's ``redis+socket:///path/to/redis.sock[?virtual_host=db]`` for a Unix socket. The query
options are the connection settings of `URL_OPTIONS` (and `TLS_URL_OPTIONS`); an unknown name or a malformed value
is a one-line `ConfigurationError` naming it, raised before any connection is made.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit

from celeriac._redact import redact_url
from celeriac.errors import ConfigurationError

SCHEMES = ("redis", "rediss", "redis+socket")
_SECRET_PARAMS = frozenset({"password"})


_BOOLS = frozenset({"1", "0", "true", "false", "yes", "no", "t", "f", "y", "n"})  # what redis-py reads as booleans


def _is_number(value: str) -> bool:
    try:
        return float(value) >= 0
    except ValueError:
        return False


_Check = tuple[str, Callable[[str], bool]]  # what a value must be (for the message), and the test
_TEXT: _Check = ("any text", lambda value: True)
_INT: _Check = ("a whole number >= 0", str.isdigit)
_NUMBER: _Check = ("a number >= 0", _is_number)
_BOOL: _Check = ("one of 1/0, true/false, yes/no, t/f, y/n", lambda value: value.lower() in _BOOLS)
_CERT_REQS: _Check = ("one of none, optional, required", lambda value: value in ("none", "optional", "required"))

URL_OPTIONS: Mapping[str, _Check] = {
    "db": _INT,
    "username": _TEXT,
    "password": _TEXT,
    "client_name": _TEXT,
    "socket_timeout": _NUMBER,
    "socket_connect_timeout": _NUMBER,
    "socket_keepalive": _BOOL,
    "socket_read_size": _INT,
    "retry_on_timeout": _BOOL,
    "max_connections": _INT,
    "health_check_interval": _INT,
}
"""The query options of every Redis URL, each with the check of its value (passed on to redis-py as given)."""

TLS_URL_OPTIONS: Mapping[str, _Check] = {
    "ssl_cert_reqs": _CERT_REQS,
    "ssl_ca_certs": _TEXT,
    "ssl_certfile": _TEXT,
    "ssl_keyfile": _TEXT,
    "ssl_check_hostname": _BOOL,
    "ssl_ciphers": _TEXT,
}
"""The query options of a ``rediss://`` URL on top of `URL_OPTIONS`."""

SOCKET_URL_OPTIONS: Mapping[str, _Check] = {"virtual_host": _INT}
"""The query options of a ``redis+socket://`` URL on top of `URL_OPTIONS` (kombu's name of the database)."""


def redact(url: str) -> str:
    """``url`` with its password (user info or a secret query item) replaced by ``***`` (`celeriac._redact`)."""
    return redact_url(url)


def check_url(url: str) -> str:
    """The scheme of ``url`` once its scheme and query options are known to be usable. No I/O.

    Raises:
        ConfigurationError: not a Redis scheme, an unknown query option or a malformed value (the message names it).
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(f"not a Redis URL: {redact(url)!r} (expected one of {', '.join(SCHEMES)})")
    known = dict(URL_OPTIONS)
    if parts.scheme == "rediss":
        known.update(TLS_URL_OPTIONS)
    elif parts.scheme == "redis+socket":
        known.update(SOCKET_URL_OPTIONS)
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        check = known.get(name)
        if check is None:
            raise ConfigurationError(f"unknown option {name!r} in Redis URL {redact(url)!r}{_hint(name, known)}")
        if not value:
            continue  # redis-py ignores an empty value
        what, test = check
        if not test(value):
            shown = "***" if name in _SECRET_PARAMS else value
            raise ConfigurationError(f"Redis URL option {name!r} must be {what}, not {shown!r}")
    return parts.scheme


def _hint(name: str, known: Mapping[str, object]) -> str:
    if name in TLS_URL_OPTIONS:
        return " (ssl_* options need a rediss:// URL)"
    if name in SOCKET_URL_OPTIONS:
        return " (the database is the path: redis://host/<db>)"
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(known))})"


def redis_py_url(url: str) -> str:
    """The URL in a form redis-py parses: ``redis+socket://`` becomes ``unix://`` with ``db`` set.

    Raises:
        ConfigurationError: as `check_url`.
    """
    if check_url(url) != "redis+socket":
        return url
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    db = next((v for k, v in pairs if k in ("virtual_host", "db")), "0") or "0"
    rest = [(k, v) for k, v in pairs if k not in ("virtual_host", "db")]
    return f"unix://{parts.netloc}{parts.path}?{urlencode([('db', db), *rest])}"
