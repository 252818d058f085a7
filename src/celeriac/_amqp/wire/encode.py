"""AMQP 0-9-1 frames out: publishes (method, content header, body), acks, and pamqp's methods framed.

Header tables are written as Celery's own client (py-amqp) writes them, so a Celery worker reads a celeriac
message exactly as one from Celery: floats as doubles (``d``; pamqp writes single precision, so 0.1 arrived as
0.10000000149), integers as ``I`` or ``l``, text as ``S``, ``bytearray`` as ``x``, lists and tuples as ``A``,
mappings as ``F``, datetimes as ``T``, Decimals as ``D``, None as ``V``. What AMQP cannot carry is refused with
the key named (`ValueError`/`TypeError`), never truncated or dropped: ``bytes`` (a table carries text),
integers beyond 64 bits, field names over 128 bytes, short strings over 255 bytes.
"""

from __future__ import annotations

import calendar
import datetime
import decimal
import struct
from collections.abc import Mapping
from typing import Any

from celeriac._amqp.wire.codec import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_METHOD,
    FRAME_OVERHEAD,
    SHORTSTR_PROPS,
    Properties,
)

_frame_head = struct.Struct(">BHI")
_method_id = struct.Struct(">HH")
_content_head = struct.Struct(">HHQ")
_ack = struct.Struct(">BHIHHQBB")
_u32 = struct.Struct(">I")
_i32 = struct.Struct(">i")
_i64 = struct.Struct(">q")
_u64 = struct.Struct(">Q")
_f64 = struct.Struct(">d")
_decimal = struct.Struct(">Bi")


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    """One frame on the wire."""
    return _frame_head.pack(kind, channel, len(payload)) + payload + b"\xce"


def ack_frames(channel: int, tags: list[int], multiple: int | None = None) -> bytes:
    """``basic.ack`` frames for ``tags``, and first one ``multiple`` ack up to that tag when given, as one buffer."""
    pack = _ack.pack
    first = [pack(FRAME_METHOD, channel, 13, 60, 80, multiple, 1, FRAME_END)] if multiple is not None else []
    return b"".join(first + [pack(FRAME_METHOD, channel, 13, 60, 80, tag, 0, FRAME_END) for tag in tags])


def method(channel: int, command: Any) -> bytes:
    """A pamqp command object as one method frame."""
    return frame(FRAME_METHOD, channel, _method_id.pack(*divmod(command.index, 1 << 16)) + command.marshal())


def publish(channel: int, exchange: str, routing_key: str, mandatory: bool, body: bytes, properties: Properties,
            frame_max: int) -> bytes:  # fmt: skip
    """``basic.publish``, its content header and body frames, as one buffer.

    Raises:
        ValueError, TypeError: a name, property or header AMQP cannot carry (the message says which).
    """
    head = b"\x00\x3c\x00\x28\x00\x00" + _shortstr(exchange, "exchange") + _shortstr(routing_key, "routing key")
    header = _content_head.pack(60, 0, len(body)) + encode_properties(properties)
    if len(header) + FRAME_OVERHEAD > frame_max:  # RabbitMQ would close the whole connection (FRAME_ERROR)
        raise ValueError(f"the headers and properties take {len(header)} bytes, over one frame ({frame_max} bytes)")
    parts = [
        frame(FRAME_METHOD, channel, head + (b"\x01" if mandatory else b"\x00")),
        frame(FRAME_HEADER, channel, header),
    ]
    step = frame_max - FRAME_OVERHEAD
    for start in range(0, len(body), step):
        parts.append(frame(FRAME_BODY, channel, body[start : start + step]))
    return b"".join(parts)


def encode_properties(props: Properties) -> bytes:
    """The property flags and values of a content header."""
    flags = 0
    out: list[bytes] = []
    for bit in _ORDER:
        value = getattr(props, _ALL[bit])
        if value is None:
            continue
        flags |= bit
        if bit == 0x2000:
            out.append(_table(value))
        elif bit in (0x1000, 0x0800):
            out.append(_octet(value, _ALL[bit]))
        elif bit == 0x0040:
            out.append(_u64.pack(_seconds(value)))
        else:
            out.append(_shortstr(value, _ALL[bit]))
    return flags.to_bytes(2, "big") + b"".join(out)


def _shortstr(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be text, not {type(value).__name__}")
    raw = value.encode()
    if len(raw) > 255:
        raise ValueError(f"{what} is longer than 255 bytes")
    return bytes((len(raw),)) + raw


def _octet(value: int, what: str) -> bytes:
    if not isinstance(value, int) or not 0 <= value <= 255:
        raise ValueError(f"{what} must be an integer from 0 to 255, not {value!r}")
    return bytes((value,))


def _seconds(value: datetime.datetime | int) -> int:
    if isinstance(value, datetime.datetime):
        return calendar.timegm(value.utctimetuple())  # naive datetimes are taken as UTC
    return int(value)


def _table(table: Mapping[str, Any]) -> bytes:
    parts: list[bytes] = []
    for key, value in table.items():
        raw = key.encode() if isinstance(key, str) else None
        if raw is None or len(raw) > 128:
            raise ValueError(f"header name {key!r} must be text of at most 128 bytes")
        parts.append(bytes((len(raw),)) + raw)
        try:
            parts.append(_value(value))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"header {key!r}: {exc}") from None
    data = b"".join(parts)
    return _u32.pack(len(data)) + data


def _value(value: Any) -> bytes:
    if isinstance(value, str):
        raw = value.encode()
        return b"S" + _u32.pack(len(raw)) + raw
    if value is None:
        return b"V"
    if isinstance(value, bool):
        return b"t\x01" if value else b"t\x00"
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return b"I" + _i32.pack(value)
        if -(2**63) <= value < 2**63:
            return b"l" + _i64.pack(value)
        raise ValueError(f"integer {value} does not fit in 64 bits")
    if isinstance(value, float):
        return b"d" + _f64.pack(value)
    if isinstance(value, Mapping):
        return b"F" + _table(value)
    if isinstance(value, list | tuple):
        data = b"".join(_value(item) for item in value)
        return b"A" + _u32.pack(len(data)) + data
    if isinstance(value, datetime.datetime):
        return b"T" + _u64.pack(_seconds(value))
    if isinstance(value, decimal.Decimal):
        return b"D" + _decimal_parts(value)
    if isinstance(value, bytearray):
        return b"x" + _u32.pack(len(value)) + bytes(value)
    raise TypeError(f"{type(value).__name__} values cannot go in an AMQP table")


def _decimal_parts(value: decimal.Decimal) -> bytes:
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"decimal {value} is not finite")
    places = max(0, -exponent)
    raw = int(value.scaleb(places))
    if places > 255 or not -(2**31) <= raw < 2**31:
        raise ValueError(f"decimal {value} does not fit AMQP's decimal (32-bit digits)")
    return _decimal.pack(places, raw)


_ALL = {**SHORTSTR_PROPS, 0x2000: "headers", 0x1000: "delivery_mode", 0x0800: "priority", 0x0040: "timestamp"}
_ORDER = sorted(_ALL, reverse=True)  # properties are written in flag order, highest bit first
