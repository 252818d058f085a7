"""AMQP URLs read as kombu reads them: ``amqp://``, ``amqps://`` (TLS) and ``pyamqp://``; no I/O.

``amqp://[user[:password]@]host[:port][/vhost][?option=value...]``: host defaults to ``localhost``, the port to
5672 (5671 with TLS), the credentials to ``guest``/``guest``; the virtual host is the path without its first
``/``, URL-decoded, and an empty path or ``//`` means ``/``. Query options are the few of `URL_OPTIONS`; any other
name is a one-line `ConfigurationError`, raised before any connection is made.
"""

from __future__ import annotations

import difflib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from celeriac._redact import redact_url
from celeriac.errors import ConfigurationError

SCHEMES = ("amqp", "amqps", "pyamqp")
PORT = 5672
TLS_PORT = 5671

URL_OPTIONS: Mapping[str, str] = {
    "heartbeat": "seconds between AMQP heartbeats (0 = off); overrides broker_heartbeat",
    "connect_timeout": "seconds to wait for the connection to open; overrides broker_connection_timeout",
}
"""The query options every AMQP URL takes (value: what it means)."""

SSL_OPTIONS = frozenset({"ca_certs", "certfile", "keyfile", "cert_reqs", "server_hostname", "check_hostname"})
"""The keys of a ``broker_use_ssl`` dict (kombu's names)."""

_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


@dataclass(frozen=True, slots=True)
class AMQPAddress:
    """Where and how to reach one RabbitMQ virtual host.

    Attributes:
        url: the URL as given, password hidden (safe to log).
        ssl_options: the ``broker_use_ssl`` dict (kombu's keys) when TLS is on, else None.
        query: the URL's query options (names from `URL_OPTIONS`), as given.
    """

    host: str
    port: int
    userid: str
    password: str = field(repr=False)
    virtual_host: str
    tls: bool
    url: str
    ssl_options: Mapping[str, Any] | None = None
    query: Mapping[str, str] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context ``ssl_options`` describe (None without TLS). Raises `ConfigurationError` on a bad one."""
        if not self.tls:
            return None
        options = dict(self.ssl_options or {})
        try:
            context = ssl.create_default_context(cafile=options.get("ca_certs"))
            if options.get("certfile"):
                context.load_cert_chain(options["certfile"], options.get("keyfile"))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"broker_use_ssl for {self.url!r}: {exc}") from exc
        reqs = options.get("cert_reqs", ssl.CERT_REQUIRED)
        reqs = _CERT_REQS.get(reqs, reqs) if isinstance(reqs, str) else reqs
        if reqs not in (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
            raise ConfigurationError(f"broker_use_ssl cert_reqs must be none, optional or required, not {reqs!r}")
        if reqs == ssl.CERT_NONE or not options.get("check_hostname", True):
            context.check_hostname = False
        context.verify_mode = ssl.VerifyMode(reqs)
        return context


def _seconds(name: str, text: str, shown: str, zero_ok: bool) -> float:
    """A URL option's number of seconds; a one-line error naming the option for anything else."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 if zero_ok else value > 0) or value == float("inf"):
        least = "0 or more" if zero_ok else "more than 0"
        raise ConfigurationError(
            f"option {name!r} in AMQP URL {shown!r} must be a number of seconds, {least}, not {text!r}"
        )
    return value


def parse_url(url: str, *, use_ssl: bool | Mapping[str, Any] | None = None) -> AMQPAddress:
    """``url`` read by kombu's rules; ``use_ssl`` is ``broker_use_ssl`` (True or a dict of kombu's TLS keys
    turns TLS on for ``amqp://`` too; ``amqps://`` always has it).

    Raises:
        ConfigurationError: not an AMQP scheme, an unknown query option or ``broker_use_ssl`` key, a bad port.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"cannot read AMQP URL {shown!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigurationError(f"not an AMQP URL: {shown!r} (expected one of {', '.join(SCHEMES)})")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name in query:
        if name not in URL_OPTIONS:
            close = difflib.get_close_matches(name, URL_OPTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(URL_OPTIONS))})"
            raise ConfigurationError(f"unknown option {name!r} in AMQP URL {shown!r}{hint}")
        _seconds(name, query[name], shown, zero_ok=name == "heartbeat")
    ssl_options: Mapping[str, Any] | None = None
    if isinstance(use_ssl, Mapping):
        unknown = sorted(set(use_ssl) - SSL_OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"unknown broker_use_ssl key {unknown[0]!r} (known: {', '.join(sorted(SSL_OPTIONS))})"
            )
        ssl_options = dict(use_ssl)
    tls = scheme == "amqps" or bool(use_ssl)
    if tls and ssl_options is None:
        ssl_options = {}
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return AMQPAddress(
        host=parts.hostname or "localhost",
        port=port or (TLS_PORT if tls else PORT),
        userid=unquote(parts.username) if parts.username is not None else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        virtual_host=unquote(path) or "/",
        tls=tls,
        url=shown,
        ssl_options=ssl_options,
        query=query,
    )
