"""kombu's Redis envelope: a `Message` as the JSON object kombu stores in lists and publishes; no I/O.

The layout is celery-wire.md §2.1, with kombu's key order so the bytes match what kombu writes::

    {"body": <base64>, "content-encoding": ..., "content-type": ..., "headers": {...},
     "properties": {<other properties>, "delivery_mode": 2, ["expiration": ...,]
                    "delivery_info": {"exchange": ..., "routing_key": ...}, "priority": 0,
                    "body_encoding": "base64", "delivery_tag": <uuid4>}}

The unacked hash stores ``[envelope, exchange, routing_key]`` (§2.5).

A message made by a `TaskShape` is written from a stencil: the shape's envelope for that exchange and routing key,
serialized once with a marker in place of each value that varies, and cut at the markers. Filling it in is
~2.7 us where serializing the whole envelope is ~9 (see `_Stencil`); the text is the same.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

from celeriac.errors import DecodeError
from celeriac.protocol.ids import new_id
from celeriac.protocol.message import Message
from celeriac.protocol.serializers import json_dumps, json_loads
from celeriac.protocol.shape import VARYING_HEADERS, TaskShape

# Properties the transport owns: they describe this hop, not the message, and are rebuilt on every publish.
_TRANSPORT_PROPERTIES = frozenset({"delivery_info", "body_encoding", "delivery_tag"})
# kombu writes these after the caller's own properties, in this order (captured from kombu 5.7).
_TRAILING = ("delivery_mode", "expiration")
_OWN_OR_TRAILING = _TRANSPORT_PROPERTIES | {*_TRAILING, "priority"}
_SURROGATE = "\\ud"  # how ASCII JSON writes the start of a surrogate (a stencil leaves those to `_encode`)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded envelope.

    Attributes:
        message: the message it carries (``properties`` without delivery_info/body_encoding/delivery_tag).
        exchange: ``delivery_info.exchange`` as published.
        routing_key: ``delivery_info.routing_key`` as published.
        delivery_tag: ``properties.delivery_tag``.
        redelivered: True when a restore marked it (``delivery_info.redelivered`` or header ``redelivered``).
        fields: the whole JSON object, to re-encode it changed (see `mark_redelivered`).
    """

    message: Message
    exchange: str
    routing_key: str
    delivery_tag: str
    redelivered: bool
    fields: dict[str, Any]


def new_tag() -> str:
    """A fresh delivery tag: a UUID4 string, as kombu makes one per publish."""
    return new_id()


def encode(message: Message, exchange: str, routing_key: str, delivery_tag: str | None = None) -> str:
    """The envelope JSON of ``message`` published to ``exchange`` with ``routing_key``.

    Raises:
        TypeError: a header or property value has no JSON form.
        ValueError: a header or property holds text that is not valid Unicode (a lone surrogate): Redis's Lua
            JSON reader could not parse the envelope, so the message could never be delivered.
    """
    shape = message.shape
    if shape is not None:
        stencil = shape.renderings.get((_STENCIL, exchange, routing_key))
        if stencil is None:
            stencil = shape.renderings[(_STENCIL, exchange, routing_key)] = _Stencil.of(shape, exchange, routing_key)
        if stencil:
            text = stencil.fill(message, delivery_tag or new_id())
            if text is not None:
                return text
    return _encode(message, exchange, routing_key, delivery_tag)


def _encode(message: Message, exchange: str, routing_key: str, delivery_tag: str | None) -> str:
    """`encode`, every part serialized."""
    source = message.properties
    properties: dict[str, Any] = {k: v for k, v in source.items() if k not in _OWN_OR_TRAILING}
    properties["delivery_mode"] = source.get("delivery_mode", 2)
    expiration = source.get("expiration")
    if expiration is not None:
        properties["expiration"] = expiration
    properties["delivery_info"] = {"exchange": exchange, "routing_key": routing_key}
    properties["priority"] = source.get("priority", 0)
    properties["body_encoding"] = "base64"
    properties["delivery_tag"] = delivery_tag or new_id()
    fields = {
        "body": base64.b64encode(message.body).decode("ascii"),
        "content-encoding": message.content_encoding,
        "content-type": message.content_type,
        "headers": message.headers if type(message.headers) is dict else dict(message.headers),
        "properties": properties,
    }
    text = json_dumps(fields)
    # ASCII JSON escapes every character beyond the BMP as a surrogate pair, and a lone surrogate alone: look
    # closer only when an escape of the surrogate range is there at all (almost never).
    if _SURROGATE in text or "\\uD" in text:
        try:
            json.dumps(fields, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a header or property is not valid Unicode (it holds a lone surrogate)") from None
    return text


_STENCIL = "redis-envelope"  # this module's key in `TaskShape.renderings`
# Marker values, each written where a varying value goes (JSON leaves these characters as they are).
_MARKS = tuple(f"celeriac:stencil:{name}:7d1f" for name in (*VARYING_HEADERS, "correlation_id", "delivery_tag"))
_BODY_MARK = b"\xff" * 12  # base64: sixteen "/", which no other part of an envelope holds


class _Stencil:
    """A shape's envelope for one exchange and routing key, cut where its messages' values go.

    ``template`` is the envelope with ``%s`` where a value goes (and its own ``%`` doubled); ``order`` picks, per
    slot in text order, from the values `fill` gathers: the base64 body, then the JSON text (a string, or null)
    of each varying header, the correlation id and the delivery tag.
    """

    __slots__ = ("_order", "_template")

    def __init__(self, template: str, order: Callable[[list[str]], tuple[str, ...]] | None) -> None:
        self._template = template
        self._order = order

    def __bool__(self) -> bool:
        return self._order is not None

    @classmethod
    def of(cls, shape: TaskShape, exchange: str, routing_key: str) -> _Stencil:
        """Serialize the shape's envelope once with markers, cut it at them; an empty stencil (never used) when
        a marker is not found exactly once (a header of the shape that happens to contain one), or an escape of
        the surrogate range is there (which only the full path checks)."""
        sample = shape.message(new_id(), None, None, (), {})
        headers = dict(sample.headers)
        headers.update(zip(VARYING_HEADERS, _MARKS, strict=False))
        properties = {**sample.properties, "correlation_id": _MARKS[-2]}
        probe = Message(_BODY_MARK, sample.content_type, sample.content_encoding, headers, properties)
        text = _encode(probe, exchange, routing_key, _MARKS[-1])
        if _SURROGATE in text:
            return cls("", None)
        found: list[tuple[int, int, int]] = []  # (position, length, value index)
        for index, needle in enumerate(
            [base64.b64encode(_BODY_MARK).decode("ascii"), *(f'"{mark}"' for mark in _MARKS)]
        ):
            if text.count(needle) != 1:
                return cls("", None)
            found.append((text.index(needle), len(needle), index))
        found.sort()
        pieces: list[str] = []
        start = 0
        for position, length, _ in found:
            pieces.append(text[start:position].replace("%", "%%"))
            start = position + length
        pieces.append(text[start:].replace("%", "%%"))
        return cls("%s".join(pieces), operator.itemgetter(*(index for _, _, index in found)))

    def fill(self, message: Message, delivery_tag: str) -> str | None:
        """The envelope of ``message`` (made by this stencil's shape); None when one of its strings needs a
        closer look than the stencil gives (an escape of the surrogate range: `_encode` decides)."""
        assert self._order is not None
        headers = message.headers
        values = [
            "null" if value is None else encode_basestring_ascii(value)
            for value in (*map(headers.__getitem__, VARYING_HEADERS), message.properties["correlation_id"],
                          delivery_tag)
        ]  # fmt: skip
        if _SURROGATE in "".join(values):
            return None  # possibly a lone surrogate, which `_encode` refuses
        values.insert(0, base64.b64encode(message.body).decode("ascii"))
        return self._template % self._order(values)


def _body(fields: Mapping[str, Any], properties: Mapping[str, Any]) -> bytes:
    body = fields.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise DecodeError(f"envelope body must be a string, not {type(body).__name__}")
    if properties.get("body_encoding") == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecodeError(f"envelope body is not valid base64: {exc}") from exc
    encoding = fields.get("content-encoding") or "utf-8"
    try:
        return body.encode("utf-8" if encoding == "binary" else encoding)
    except (LookupError, UnicodeError) as exc:
        raise DecodeError(f"cannot encode envelope body as {encoding!r}: {exc}") from exc


def decode(raw: str | bytes) -> Envelope:
    """Read an envelope. Raises DecodeError when it is not one (not JSON, no properties, bad body or priority)."""
    fields = json_loads(raw)
    if not isinstance(fields, dict):
        raise DecodeError("envelope must be a JSON object")
    properties = fields.get("properties")
    headers = fields.get("headers") or {}
    if not isinstance(properties, dict) or not isinstance(headers, dict):
        raise DecodeError("envelope properties and headers must be objects")
    priority = properties.get("priority")
    if isinstance(priority, float) and not math.isfinite(priority):
        raise DecodeError(f"envelope priority must be a finite number, not {priority!r}")
    info = properties.get("delivery_info")
    info = info if isinstance(info, dict) else {}
    message = Message(
        body=_body(fields, properties),
        content_type=str(fields.get("content-type") or "application/json"),
        content_encoding=str(fields.get("content-encoding") or "utf-8"),
        headers=headers,
        properties={k: v for k, v in properties.items() if k not in _TRANSPORT_PROPERTIES},
    )
    return Envelope(
        message=message,
        exchange=str(info.get("exchange") or ""),
        routing_key=str(info.get("routing_key") or ""),
        delivery_tag=str(properties.get("delivery_tag") or ""),
        redelivered=bool(info.get("redelivered") or headers.get("redelivered")),
        fields=fields,
    )


def mark_redelivered(envelope: Envelope) -> str:
    """The envelope JSON with ``headers.redelivered`` and ``delivery_info.redelivered`` set, as kombu restores it."""
    fields = envelope.fields
    headers = fields.get("headers")
    properties = fields["properties"]
    info = properties.get("delivery_info")
    # kombu sets both only when both exist; a message without them goes back unchanged.
    if isinstance(headers, dict) and isinstance(info, dict):
        fields = {**fields, "headers": {**headers, "redelivered": True}}
        fields["properties"] = {**properties, "delivery_info": {**info, "redelivered": True}}
    return json_dumps(fields)


def unacked_entry(raw: str | bytes) -> tuple[Envelope, str, str]:
    """Read an ``unacked`` hash value: ``(envelope, exchange, routing_key)``. Raises DecodeError."""
    value = json_loads(raw)
    if not isinstance(value, list) or len(value) != 3 or not isinstance(value[0], dict):
        raise DecodeError("unacked entry must be [envelope, exchange, routing_key]")
    envelope = decode(json_dumps(value[0]))
    return envelope, str(value[1] or ""), str(value[2] or "")
