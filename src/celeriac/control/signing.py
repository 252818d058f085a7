"""Sign remote-control requests with a shared secret, and check a signature (``control_signing_key``); no I/O.

Anyone who can publish on the broker can broadcast a command; with a signing key set, callers sign each request
and workers ignore the unsigned or badly signed ones. The signature is one extra header, ``x-celeriac-signature``:
``v1:<unix time>:<hex HMAC-SHA256>`` over the version, the time and the body bytes, so neither the body nor the
time can be changed without the key, and a captured request can be replayed only within `MAX_AGE` seconds.
Without a key nothing changes on the wire, and Celery's tools keep working; with one, only callers that know it
are obeyed (Celery's own ``celery inspect`` is then ignored too).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
from typing import Final

from celeriac.protocol.message import Message

HEADER: Final = "x-celeriac-signature"
VERSION: Final = "v1"
MAX_AGE: Final = 300.0
"""How old (or how far in the future, for clock skew) a signed request may be, in seconds."""


def _as_bytes(key: str | bytes) -> bytes:
    return key.encode() if isinstance(key, str) else key


def _digest(key: bytes, stamp: str, body: bytes) -> str:
    return hmac.new(key, f"{VERSION}:{stamp}:".encode() + body, hashlib.sha256).hexdigest()


def sign_message(message: Message, key: str | bytes | None, now: float | None = None) -> Message:
    """``message`` with its signature header, or ``message`` itself when ``key`` is None or empty."""
    if not key:
        return message
    stamp = f"{time.time() if now is None else now:.3f}"
    signature = f"{VERSION}:{stamp}:{_digest(_as_bytes(key), stamp, message.body)}"
    return dataclasses.replace(message, headers={**message.headers, HEADER: signature})


def signature_problem(message: Message, key: str | bytes, now: float | None = None) -> str | None:
    """Why ``message`` is not validly signed with ``key`` (for a log line), or None when it is."""
    value = message.headers.get(HEADER) if hasattr(message.headers, "get") else None
    if value is None:
        return "unsigned command (control_signing_key is set)"
    version, _, rest = str(value).partition(":")
    stamp, _, digest = rest.partition(":")
    try:
        signed_at = float(stamp)
    except ValueError:
        return "malformed signature"
    body = message.body if isinstance(message.body, bytes) else bytes(message.body)
    if version != VERSION or not hmac.compare_digest(digest, _digest(_as_bytes(key), stamp, body)):
        return "bad signature"
    age = (time.time() if now is None else now) - signed_at
    if not abs(age) <= MAX_AGE:  # `not <=` also refuses NaN
        return f"signature is {age:.0f} s old (at most {MAX_AGE:.0f} s)"
    return None


__all__ = ["HEADER", "MAX_AGE", "sign_message", "signature_problem"]
