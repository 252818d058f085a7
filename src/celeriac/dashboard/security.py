"""Who may do what: users and roles (basic auth or a reverse proxy's header), CSRF tokens, argument redaction."""

from __future__ import annotations

import ast
import base64
import fnmatch
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from celeriac.errors import ConfigurationError

ROLES = ("viewer", "operator", "admin")
REDACTED = "***"


def role_at_least(role: str, needed: str) -> bool:
    """Whether ``role`` includes ``needed`` (admin ⊃ operator ⊃ viewer)."""
    return ROLES.index(role) >= ROLES.index(needed)


def is_loopback(address: str) -> bool:
    """Whether binding ``address`` is reachable from this machine only."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def parse_users(specs: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``user:password[:role]`` options into {user: (password, role)}; role defaults to admin."""
    users: dict[str, tuple[str, str]] = {}
    for spec in specs:
        parts = spec.split(":")
        if len(parts) < 2 or not parts[0]:
            raise ConfigurationError(f"--auth must be user:password[:role], not {parts[0]!r} alone")
        role = "admin"
        if len(parts) >= 3 and parts[-1] in ROLES:
            role = parts.pop()
        elif len(parts) >= 3 and parts[-1].isalpha() and parts[-1].islower():
            raise ConfigurationError(f"--auth role must be one of {', '.join(ROLES)}, not {parts[-1]!r}")
        users[parts[0]] = (":".join(parts[1:]), role)
    return users


@dataclass
class Access:
    """The access policy of one dashboard.

    Args:
        users: basic-auth users; empty with no ``header`` means no login (loopback only, everyone admin).
        header: a reverse proxy's header naming the authenticated user (its role from ``role_header``).
        role_header: the header with that user's role (viewer when absent).
    """

    users: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    header: str | None = None
    role_header: str | None = None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def enabled(self) -> bool:
        """Whether requests must say who they are."""
        return bool(self.users or self.header)

    def identify(self, headers: Mapping[str, str]) -> tuple[str, str] | None:
        """(user, role) of a request, or None when it must authenticate."""
        if not self.enabled:
            return "local", "admin"
        if self.header:
            user = headers.get(self.header.lower())
            if not user:
                return None
            role = headers.get((self.role_header or "").lower(), "viewer") if self.role_header else "viewer"
            return user, role if role in ROLES else "viewer"
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        known = self.users.get(user)
        if known is None or not hmac.compare_digest(known[0].encode(), password.encode()):
            return None
        return user, known[1]

    def csrf_token(self, user: str) -> str:
        """The token every form of ``user`` carries (bound to the user and this process's secret)."""
        return hmac.new(self.secret, user.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, user: str, token: str) -> bool:
        """Whether a POST's token is the user's."""
        return hmac.compare_digest(self.csrf_token(user), token)


@dataclass(frozen=True)
class Redactor:
    """Hides arguments before they are stored: all of a task whose name matches, or kwargs whose key matches."""

    patterns: tuple[str, ...]

    def __call__(self, name: Any, args: Any, kwargs: Any) -> tuple[Any, Any]:
        if any(fnmatch.fnmatchcase(str(name or ""), p) for p in self.patterns):
            return REDACTED, REDACTED
        return args, self._kwargs(kwargs)

    def _kwargs(self, kwargs: Any) -> Any:
        value = kwargs
        if isinstance(kwargs, str):  # Celery's events carry a repr
            try:
                value = ast.literal_eval(kwargs)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return REDACTED  # unreadable: cannot tell which keys are secret, so hide it all
        if not isinstance(value, dict):
            return kwargs
        hidden = {
            k: (REDACTED if any(fnmatch.fnmatchcase(str(k), p) for p in self.patterns) else v) for k, v in value.items()
        }
        return repr(hidden) if isinstance(kwargs, str) else hidden
