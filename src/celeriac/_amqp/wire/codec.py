"""AMQP 0-9-1 frames: splitting a byte stream into frames, and the hot decodings done here rather than by pamqp.

A task delivery is three frames: ``basic.deliver``, a content header whose properties carry Celery's headers
as a field table, and the body. pamqp decodes these by slicing the remaining bytes for every value (the table
of a task message is about twenty values), which made it the largest cost of a RabbitMQ worker; here they are
read at offsets from one buffer. Every other method (declarations, replies, ``connection.*``) is rare and is
decoded by pamqp. Writing is `celeriac._amqp.wire.encode`.

Field-table values decode as pamqp decodes them (RabbitMQ's errata types), so a header reads the same whichever
path it came by: ``S`` is text (bytes when it is not UTF-8), ``x`` bytes, ``T`` an aware UTC datetime, ``D`` a
Decimal, ``A`` a list, ``F`` a dict, ``V`` None.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from dataclasses import dataclass
from typing import Any

from pamqp import commands

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_OVERHEAD = 8  # 7 bytes of header, 1 frame-end octet

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

_frame_head = struct.Struct(">BHI")
_method_id = struct.Struct(">HH")
_u16 = struct.Struct(">H")
_u32 = struct.Struct(">I")
_u64 = struct.Struct(">Q")
_header_head = struct.Struct(">HHQH")  # class id, weight, body size, first property flags
_deliver_tail = struct.Struct(">QB")  # delivery tag, redelivered

BASIC_DELIVER = (60 << 16) | 60
BASIC_RETURN = (60 << 16) | 50
BASIC_ACK = (60 << 16) | 80
BASIC_NACK = (60 << 16) | 120


class FrameError(ValueError):
    """The peer sent bytes that are not a well-formed AMQP frame (the connection cannot go on)."""


def split_frames(buffer: bytearray, frame_max: int) -> tuple[list[tuple[int, int, bytes]], int]:
    """The complete frames at the start of ``buffer`` as ``(type, channel, payload)``, and the bytes they used.

    Raises:
        FrameError: a frame larger than ``frame_max`` or without its frame-end octet.
    """
    frames: list[tuple[int, int, bytes]] = []
    offset = 0
    size = len(buffer)
    unpack = _frame_head.unpack_from
    while size - offset >= 7:
        kind, channel, length = unpack(buffer, offset)
        end = offset + 7 + length
        if end >= size:
            if length + FRAME_OVERHEAD > frame_max:
                raise FrameError(f"frame of {length} bytes is larger than the negotiated frame_max {frame_max}")
            break
        if buffer[end] != FRAME_END:
            raise FrameError(f"frame without its end octet (type {kind}, channel {channel}, {length} bytes)")
        frames.append((kind, channel, bytes(buffer[offset + 7 : end])))
        offset = end + 1
    return frames, offset


def method_key(payload: bytes) -> int:
    """``class_id << 16 | method_id`` of a method frame's payload."""
    class_id, method = _method_id.unpack_from(payload, 0)
    return int(class_id << 16 | method)


@dataclass(slots=True)
class Deliver:
    """A ``basic.deliver`` (also used for ``basic.return`` and ``basic.get-ok``, with the fields they have)."""

    consumer_tag: str
    delivery_tag: int
    redelivered: bool
    exchange: str
    routing_key: str
    reply_code: int = 0
    reply_text: str = ""


def decode_deliver(payload: bytes) -> Deliver:
    """``basic.deliver``: consumer tag, delivery tag, redelivered, exchange, routing key."""
    offset = 4
    tag_len = payload[offset]
    consumer_tag = payload[offset + 1 : offset + 1 + tag_len].decode()
    offset += 1 + tag_len
    delivery_tag, redelivered = _deliver_tail.unpack_from(payload, offset)
    offset += 9
    exchange, offset = _shortstr(payload, offset)
    routing_key, _ = _shortstr(payload, offset)
    return Deliver(consumer_tag, delivery_tag, bool(redelivered & 1), exchange, routing_key)


def decode_return(payload: bytes) -> Deliver:
    """``basic.return``: reply code and text, exchange, routing key (no tags: it is matched by message id)."""
    (code,) = _u16.unpack_from(payload, 4)
    text, offset = _shortstr(payload, 6)
    exchange, offset = _shortstr(payload, offset)
    routing_key, _ = _shortstr(payload, offset)
    return Deliver("", 0, False, exchange, routing_key, code, text)


def decode_confirm(payload: bytes) -> tuple[int, bool]:
    """``basic.ack`` / ``basic.nack`` from the broker (publisher confirms): delivery tag and ``multiple``."""
    tag, bits = _deliver_tail.unpack_from(payload, 4)
    return int(tag), bool(bits & 1)


class Properties:
    """The basic properties of a content header, by pamqp's attribute names (``message_type`` is AMQP ``type``)."""

    __slots__ = (
        "app_id",
        "cluster_id",
        "content_encoding",
        "content_type",
        "correlation_id",
        "delivery_mode",
        "expiration",
        "headers",
        "message_id",
        "message_type",
        "priority",
        "reply_to",
        "timestamp",
        "user_id",
    )

    def __init__(
        self,
        *,
        content_type: str | None = None,
        content_encoding: str | None = None,
        headers: dict[str, Any] | None = None,
        delivery_mode: int | None = None,
        priority: int | None = None,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        expiration: str | None = None,
        message_id: str | None = None,
        timestamp: datetime.datetime | None = None,
        message_type: str | None = None,
        user_id: str | None = None,
        app_id: str | None = None,
        cluster_id: str | None = None,
    ) -> None:
        self.content_type = content_type
        self.content_encoding = content_encoding
        self.headers = headers
        self.delivery_mode = delivery_mode
        self.priority = priority
        self.correlation_id = correlation_id
        self.reply_to = reply_to
        self.expiration = expiration
        self.message_id = message_id
        self.timestamp = timestamp
        self.message_type = message_type
        self.user_id = user_id
        self.app_id = app_id
        self.cluster_id = cluster_id


# The short-string properties by flag bit (the others are read, and written, one by one).
SHORTSTR_PROPS = {
    1 << 15: "content_type",
    1 << 14: "content_encoding",
    1 << 10: "correlation_id",
    1 << 9: "reply_to",
    1 << 8: "expiration",
    1 << 7: "message_id",
    1 << 5: "message_type",
    1 << 4: "user_id",
    1 << 3: "app_id",
    1 << 2: "cluster_id",
}


def decode_header(payload: bytes) -> tuple[int, Properties]:
    """A content header: the body size and the properties.

    Raises:
        FrameError: properties that do not decode.
    """
    try:
        _class, _weight, size, flags = _header_head.unpack_from(payload, 0)
        offset = 14
        extra = flags
        while extra & 1:  # continuation bit: more flag words (none are defined for basic; skipped)
            (extra,) = _u16.unpack_from(payload, offset)
            offset += 2
        props = Properties()
        if flags & 0x8000:
            props.content_type, offset = _shortstr(payload, offset)
        if flags & 0x4000:
            props.content_encoding, offset = _shortstr(payload, offset)
        if flags & 0x2000:
            props.headers, offset = _table(payload, offset)
        if flags & 0x1000:
            props.delivery_mode = payload[offset]
            offset += 1
        if flags & 0x0800:
            props.priority = payload[offset]
            offset += 1
        for bit in (1 << 10, 1 << 9, 1 << 8, 1 << 7):
            if flags & bit:
                value, offset = _shortstr(payload, offset)
                setattr(props, SHORTSTR_PROPS[bit], value)
        if flags & 0x0040:
            (stamp,) = _u64.unpack_from(payload, offset)
            props.timestamp = _timestamp(stamp)
            offset += 8
        for bit in (1 << 5, 1 << 4, 1 << 3, 1 << 2):
            if flags & bit:
                value, offset = _shortstr(payload, offset)
                setattr(props, SHORTSTR_PROPS[bit], value)
    except (struct.error, IndexError, UnicodeDecodeError, KeyError) as exc:
        raise FrameError(f"content header that does not decode ({exc})") from exc
    return int(size), props


def body_size(payload: bytes) -> int:
    """The body size of a content header whose properties do not decode (to skip its body).

    Raises:
        FrameError: not even the fixed part is there.
    """
    try:
        return int(_header_head.unpack_from(payload, 0)[2])
    except struct.error as exc:
        raise FrameError(f"content header of {len(payload)} bytes") from exc


def _shortstr(data: bytes, offset: int) -> tuple[str, int]:
    length = data[offset]
    end = offset + 1 + length
    return data[offset + 1 : end].decode(), end


def _longstr(data: bytes, offset: int) -> tuple[str | bytes, int]:
    (length,) = _u32.unpack_from(data, offset)
    end = offset + 4 + length
    raw = data[offset + 4 : end]
    if len(raw) != length:
        raise IndexError("long string runs past the frame")
    try:
        return raw.decode(), end
    except UnicodeDecodeError:
        return raw, end


def _timestamp(value: int) -> datetime.datetime:
    seconds = value / 1000.0 if value > 0xFFFFFFFF else value  # above 2106: milliseconds (as pamqp reads it)
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


def _table(data: bytes, offset: int) -> tuple[dict[str, Any], int]:
    (length,) = _u32.unpack_from(data, offset)
    offset += 4
    end = offset + length
    if end > len(data):
        raise IndexError("field table runs past the frame")
    table: dict[str, Any] = {}
    while offset < end:
        key_len = data[offset]
        key = data[offset + 1 : offset + 1 + key_len].decode()
        table[key], offset = _value(data, offset + 1 + key_len)
    return table, end


def _array(data: bytes, offset: int) -> tuple[list[Any], int]:
    (length,) = _u32.unpack_from(data, offset)
    offset += 4
    end = offset + length
    if end > len(data):
        raise IndexError("field array runs past the frame")
    items: list[Any] = []
    while offset < end:
        value, offset = _value(data, offset)
        items.append(value)
    return items, end


_FIXED = {
    ord("b"): struct.Struct(">b"),
    ord("B"): struct.Struct(">B"),
    ord("s"): struct.Struct(">h"),
    ord("u"): struct.Struct(">H"),
    ord("I"): struct.Struct(">i"),
    ord("i"): struct.Struct(">I"),
    ord("l"): struct.Struct(">q"),
    ord("L"): struct.Struct(">q"),  # pamqp reads L as signed too
    ord("f"): struct.Struct(">f"),
    ord("d"): struct.Struct(">d"),
}
_decimal_parts = struct.Struct(">Bi")


def _value(data: bytes, offset: int) -> tuple[Any, int]:
    kind = data[offset]
    offset += 1
    if kind == 83:  # S
        return _longstr(data, offset)
    fixed = _FIXED.get(kind)
    if fixed is not None:
        return fixed.unpack_from(data, offset)[0], offset + fixed.size
    if kind == 116:  # t
        return data[offset] != 0, offset + 1
    if kind == 70:  # F
        return _table(data, offset)
    if kind == 65:  # A
        return _array(data, offset)
    if kind == 84:  # T
        (stamp,) = _u64.unpack_from(data, offset)
        return _timestamp(stamp), offset + 8
    if kind == 120:  # x
        (length,) = _u32.unpack_from(data, offset)
        return bytearray(data[offset + 4 : offset + 4 + length]), offset + 4 + length
    if kind == 68:  # D
        places, raw = _decimal_parts.unpack_from(data, offset)
        return decimal.Decimal(raw) * (decimal.Decimal(10) ** -places), offset + 5
    if kind in (86, 0):  # V, and NUL as seen in the wild
        return None, offset
    raise KeyError(f"unknown field type {chr(kind)!r}")


def decode_method(payload: bytes) -> Any:
    """Any method frame's payload as its pamqp command object (the rare methods: replies, ``connection.*``).

    Raises:
        FrameError: an unknown method or arguments that do not decode.
    """
    key = method_key(payload)
    kind = commands.INDEX_MAPPING.get(key)
    if kind is None:
        raise FrameError(f"unknown AMQP method {key >> 16}.{key & 0xFFFF}")
    method = kind()
    try:
        method.unmarshal(payload[4:])
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"{type(method).__name__} that does not decode ({exc})") from exc
    return method
