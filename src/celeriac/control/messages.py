"""Remote-control requests and replies on the wire (celery-wire.md §5.1-§5.3); no I/O.

A request is broadcast on the fanout exchange ``celery.pidbox``; a node answers by publishing ``{node: value}``
to the direct exchange ``reply.celery.pidbox`` with the request's ``reply_to.routing_key``, which the caller
bound to its own reply queue ``<oid>.reply.celery.pidbox`` before broadcasting.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celeriac.errors import ProtocolError
from celeriac.protocol.message import JSON, Message
from celeriac.protocol.serializers import json_dumps, loads, normalize_accept

log = logging.getLogger("celeriac.control")

EXCHANGE = "celery.pidbox"
REPLY_EXCHANGE = "reply.celery.pidbox"
JSON_ONLY = normalize_accept(["json"])


@dataclass(frozen=True, slots=True)
class ControlRequest:
    """One decoded request. ``ticket``/``reply_to`` are None for commands that want no reply."""

    method: str
    arguments: Mapping[str, Any]
    destination: tuple[str, ...] | None = None
    pattern: str | None = None
    matcher: str | None = None
    ticket: str | None = None
    reply_exchange: str | None = None
    reply_routing_key: str | None = None
    clock: int | None = None

    @property
    def wants_reply(self) -> bool:
        """Whether a reply must be published."""
        return bool(self.ticket and self.reply_routing_key)

    def selects(self, hostname: str) -> bool:
        """Whether node ``hostname`` should run it (§5.2): destination list, else pattern + matcher, else all."""
        if self.destination:
            return hostname in self.destination
        if self.pattern and self.matcher:
            if self.matcher == "glob":
                return fnmatch.fnmatchcase(hostname, self.pattern)
            if self.matcher == "pcre":
                try:
                    return re.match(self.pattern, hostname) is not None
                except re.error:
                    return False
            log.warning("control %s: unknown matcher %r; not for us", self.method, self.matcher)
            return False
        return True


def request_message(request: ControlRequest, clock: int, timeout: float | None) -> Message:
    """The broker message of ``request`` (§5.1)."""
    body: dict[str, Any] = {
        "method": request.method,
        "arguments": dict(request.arguments),
        "destination": list(request.destination) if request.destination else None,
        "pattern": request.pattern,
        "matcher": request.matcher,
    }
    if request.wants_reply:
        body["ticket"] = request.ticket
        body["reply_to"] = {
            "exchange": request.reply_exchange or REPLY_EXCHANGE,
            "routing_key": request.reply_routing_key,
        }
    expires = time.time() + timeout if timeout else 0
    return Message(
        body=json_dumps(body).encode(),
        content_type=JSON,
        content_encoding="utf-8",
        headers={"clock": clock, "expires": expires},
        properties={"delivery_mode": 2, "priority": 0},
    )


def parse_request(message: Message, accept: frozenset[str] = JSON_ONLY) -> ControlRequest:
    """Decode a request. Raises ProtocolError naming what is wrong (not JSON, no method, bad field types)."""
    body = loads(message.body, message.content_type, message.content_encoding, accept)
    if not isinstance(body, dict) or not isinstance(body.get("method"), str):
        raise ProtocolError("a control request must be an object with a 'method' string")
    arguments = body.get("arguments") or {}
    destination = body.get("destination")
    reply_to = body.get("reply_to") or {}
    if not isinstance(arguments, dict) or not isinstance(reply_to, dict):
        raise ProtocolError("control request 'arguments' and 'reply_to' must be objects")
    if destination is not None and not isinstance(destination, list | tuple):
        raise ProtocolError("control request 'destination' must be a list or null")
    clock = message.headers.get("clock")

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return ControlRequest(
        method=body["method"],
        arguments=arguments,
        destination=tuple(str(node) for node in destination) if destination else None,
        pattern=text(body.get("pattern")),
        matcher=text(body.get("matcher")),
        ticket=text(body.get("ticket")),
        reply_exchange=text(reply_to.get("exchange")),
        reply_routing_key=text(reply_to.get("routing_key")),
        clock=clock if isinstance(clock, int) and not isinstance(clock, bool) else None,
    )


def reply_message(hostname: str, value: Any, ticket: str, clock: int) -> Message:
    """A node's reply (§5.3): body ``{hostname: value}``, headers ticket and clock, delivery_mode 1."""
    return Message(
        body=json_dumps({hostname: value}).encode(),
        content_type=JSON,
        content_encoding="utf-8",
        headers={"ticket": ticket, "clock": clock},
        properties={"delivery_mode": 1, "priority": 0},
    )


def reply_queue(oid: str) -> str:
    """The reply queue of caller ``oid``."""
    return f"{oid}.{REPLY_EXCHANGE}"
