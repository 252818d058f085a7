"""The AMQP client's own decoding reads what pamqp (the reference encoder and decoder) writes, value for value.

The hot path (``basic.deliver``, content headers with Celery's header table, ``basic.ack``/``nack``) is decoded
by `celeriac._amqp.wire.codec`, not pamqp; these tests encode with pamqp and compare both decodings.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import frame as pframe
from pamqp.commands import Basic, Queue
from pamqp.header import ContentHeader

from celeriac._amqp.wire import codec, encode

CELERY_HEADERS: dict[str, Any] = {
    "lang": "py",
    "task": "proj.tasks.add",
    "id": "2c1b9f9c-4d1e-4c1e-9d5e-1f0c6b3f7a10",
    "shadow": None,
    "eta": None,
    "expires": "2026-12-05T12:00:00+00:00",
    "group": None,
    "group_index": None,
    "retries": 0,
    "timelimit": [None, None],
    "root_id": "2c1b9f9c-4d1e-4c1e-9d5e-1f0c6b3f7a10",
    "parent_id": None,
    "argsrepr": "(2, 2)",
    "kwargsrepr": "{}",
    "origin": "gen1@host",
    "ignore_result": False,
    "replaced_task_nesting": 0,
    "stamped_headers": None,
    "stamps": {},
    "big": 2**40,
    "neg": -5,
    "ratio": 0.25,
    "deep": {"a": [1, {"b": None}], "c": True},
}


# pamqp shows an absent cluster_id as "" (it refuses to write one); ours is None. Compared on its own below.
COMPARED = [name for name in codec.Properties.__slots__ if name != "cluster_id"]


def _frames(data: bytes) -> list[tuple[int, int, bytes]]:
    frames, used = codec.split_frames(bytearray(data), 131072)
    assert used == len(data)
    return frames


def _header_payload(properties: Basic.Properties, size: int = 3) -> bytes:
    ((kind, channel, payload),) = _frames(pframe.marshal(ContentHeader(0, size, properties), 5))
    assert (kind, channel) == (codec.FRAME_HEADER, 5)
    return payload


def _pamqp_props(properties: Basic.Properties) -> Basic.Properties:
    _, _, header = pframe.unmarshal(pframe.marshal(ContentHeader(0, 3, properties), 5))
    assert isinstance(header, ContentHeader)
    return header.properties


def test_a_celery_task_header_decodes_as_pamqp_decodes_it() -> None:
    stamp = datetime.datetime(2026, 12, 5, 11, 0, tzinfo=datetime.UTC)
    properties = Basic.Properties(
        content_type="application/json", content_encoding="utf-8", headers=CELERY_HEADERS, delivery_mode=2,
        priority=3, correlation_id="c-1", reply_to="r.q", expiration="60000", message_id="m-1", timestamp=stamp,
        message_type="t", user_id="guest", app_id="celeriac",
    )  # fmt: skip
    size, ours = codec.decode_header(_header_payload(properties, 42))
    reference = _pamqp_props(properties)
    assert size == 42
    for name in COMPARED:
        assert getattr(ours, name) == getattr(reference, name), name
    assert ours.headers == reference.headers


def test_an_empty_header_has_no_properties() -> None:
    size, ours = codec.decode_header(_header_payload(Basic.Properties(), 0))
    assert size == 0
    assert all(getattr(ours, name) is None for name in codec.Properties.__slots__)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(width=32, allow_nan=False, allow_infinity=False),  # pamqp, the reference, writes single precision
    st.text(max_size=20),
    st.binary(max_size=10).map(bytearray),
    st.decimals(places=2, min_value=-1000, max_value=1000, allow_nan=False, allow_infinity=False),
    st.datetimes(
        min_value=datetime.datetime(1971, 1, 1),
        max_value=datetime.datetime(2100, 1, 1),
        timezones=st.just(datetime.UTC),
    ).map(lambda d: d.replace(microsecond=0)),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=8))
def test_any_header_table_decodes_as_pamqp_decodes_it(headers: dict[str, Any]) -> None:
    properties = Basic.Properties(headers=headers)
    try:
        payload = _header_payload(properties)
    except (TypeError, ValueError):
        return  # pamqp cannot encode it (a key over 255 bytes, say): nothing goes on the wire
    _, ours = codec.decode_header(payload)
    assert ours.headers == _pamqp_props(properties).headers


def test_deliver_return_and_confirm_methods() -> None:
    deliver = Basic.Deliver(consumer_tag="ctag1.x", delivery_tag=2**40 + 7, redelivered=True, exchange="celery",
                            routing_key="celery")  # fmt: skip
    ((_, _, payload),) = _frames(pframe.marshal(deliver, 1))
    assert codec.method_key(payload) == codec.BASIC_DELIVER
    got = codec.decode_deliver(payload)
    assert (got.consumer_tag, got.delivery_tag, got.redelivered, got.exchange, got.routing_key) == (
        "ctag1.x", 2**40 + 7, True, "celery", "celery",
    )  # fmt: skip
    returned = Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="", routing_key="nowhere")
    ((_, _, payload),) = _frames(pframe.marshal(returned, 1))
    got = codec.decode_return(payload)
    assert (got.reply_code, got.reply_text, got.exchange, got.routing_key) == (312, "NO_ROUTE", "", "nowhere")
    for method, key in ((Basic.Ack(delivery_tag=9, multiple=True), codec.BASIC_ACK),
                        (Basic.Nack(delivery_tag=4, multiple=False), codec.BASIC_NACK)):  # fmt: skip
        ((_, _, payload),) = _frames(pframe.marshal(method, 1))
        assert codec.method_key(payload) == key
        assert codec.decode_confirm(payload) == (method.delivery_tag, method.multiple)


def test_our_encodings_are_what_pamqp_reads() -> None:
    properties = codec.Properties(content_type="application/json", headers=dict(CELERY_HEADERS), priority=9,
                                  correlation_id="c", delivery_mode=2, message_type="t", app_id="a")  # fmt: skip
    body = b"x" * 2500
    frames = _frames(encode.publish(3, "celery", "celery.rk", True, body, properties, frame_max=1024))
    assert [kind for kind, _, _ in frames] == [codec.FRAME_METHOD, codec.FRAME_HEADER, 3, 3, 3]
    method = codec.decode_method(frames[0][2])
    assert (frames[0][1], type(method), method.exchange, method.routing_key, method.mandatory) == (
        3, Basic.Publish, "celery", "celery.rk", True,
    )  # fmt: skip
    _, _, header = pframe.unmarshal(encode.frame(*frames[1]))
    assert isinstance(header, ContentHeader) and header.body_size == 2500
    for name in COMPARED:
        assert getattr(header.properties, name) == getattr(properties, name), name
    assert b"".join(p for _, _, p in frames[2:]) == body
    acks = _frames(encode.ack_frames(2, [5, 6]))
    assert [codec.decode_method(p).delivery_tag for _, _, p in acks] == [5, 6]
    declare = codec.decode_method(_frames(encode.method(1, Queue.Declare(queue="q", durable=True)))[0][2])
    assert (declare.queue, declare.durable) == ("q", True)


def test_floats_keep_double_precision_and_tuples_are_arrays() -> None:
    headers = {"timelimit": (0.1, 2.5), "soft": 1e300, "when": datetime.datetime(2026, 12, 5, tzinfo=datetime.UTC)}
    payload = encode.encode_properties(codec.Properties(headers=headers))
    _, ours = codec.decode_header(b"\x00\x3c\x00\x00" + (0).to_bytes(8, "big") + payload)
    assert ours.headers == {"timelimit": [0.1, 2.5], "soft": 1e300, "when": headers["when"]}


@pytest.mark.parametrize(
    ("headers", "match"),
    [
        ({"blob": b"raw"}, "header 'blob': bytes values cannot go in an AMQP table"),
        ({"big": 2**64}, "header 'big': integer .* does not fit in 64 bits"),
        ({"k" * 129: 1}, "header name .* at most 128 bytes"),
        ({"nested": {"x": object()}}, "header 'nested': header 'x': object values"),
    ],
)
def test_what_a_table_cannot_carry_is_refused_by_name(headers: dict[str, Any], match: str) -> None:
    with pytest.raises((TypeError, ValueError), match=match):
        encode.encode_properties(codec.Properties(headers=headers))


def test_property_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="priority must be an integer from 0 to 255"):
        encode.encode_properties(codec.Properties(priority=256))
    with pytest.raises(ValueError, match="correlation_id is longer than 255 bytes"):
        encode.encode_properties(codec.Properties(correlation_id="c" * 256))
    with pytest.raises(ValueError, match="routing key is longer than 255 bytes"):
        encode.publish(1, "", "k" * 256, False, b"", codec.Properties(), 131072)


def test_frames_split_across_reads_wait_for_their_end() -> None:
    data = pframe.marshal(Basic.Ack(delivery_tag=1), 1) + pframe.marshal(Basic.Ack(delivery_tag=2), 1)
    buffer = bytearray()
    seen: list[int] = []
    for byte in data:  # one byte per read: the worst a socket can do
        buffer.append(byte)
        frames, used = codec.split_frames(buffer, 131072)
        del buffer[:used]
        seen += [codec.decode_confirm(p)[0] for _, _, p in frames]
    assert seen == [1, 2]
    assert not buffer


def test_malformed_frames_are_frame_errors() -> None:
    good = bytearray(pframe.marshal(Basic.Ack(delivery_tag=1), 1))
    good[-1] = 0  # no frame-end octet
    with pytest.raises(codec.FrameError, match="end octet"):
        codec.split_frames(good, 131072)
    huge = bytearray(b"\x01\x00\x01\x7f\xff\xff\xff")  # announces a 2 GiB frame
    with pytest.raises(codec.FrameError, match="larger than the negotiated frame_max"):
        codec.split_frames(huge, 131072)
    with pytest.raises(codec.FrameError, match="unknown AMQP method"):
        codec.decode_method(b"\x00\x63\x00\x01")
    bad_table = _header_payload(Basic.Properties(headers={"a": 1}))[:-2]  # the table runs past the frame
    with pytest.raises(codec.FrameError, match="does not decode"):
        codec.decode_header(bad_table)


def test_every_property_round_trips_through_our_own_encoder() -> None:
    stamp = datetime.datetime(2026, 12, 5, 11, 0, tzinfo=datetime.UTC)
    given = {"content_type": "a/b", "content_encoding": "utf-8", "headers": {"k": "v"}, "delivery_mode": 2,
             "priority": 7, "correlation_id": "c", "reply_to": "r", "expiration": "10", "message_id": "m",
             "timestamp": stamp, "message_type": "t", "user_id": "u", "app_id": "a", "cluster_id": "x"}  # fmt: skip
    payload = encode.encode_properties(codec.Properties(**given))
    _, ours = codec.decode_header(b"\x00\x3c\x00\x00" + (5).to_bytes(8, "big") + payload)
    assert {name: getattr(ours, name) for name in given} == given


def test_decimal_and_void_values() -> None:
    headers = {"d": decimal.Decimal("12.34"), "v": None}
    _, ours = codec.decode_header(_header_payload(Basic.Properties(headers=headers)))
    assert ours.headers == {"d": decimal.Decimal("12.34"), "v": None}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12), values | st.floats(allow_nan=False), max_size=8))
def test_any_header_table_round_trips_through_our_encoder(headers: dict[str, Any]) -> None:
    payload = encode.encode_properties(codec.Properties(headers=headers))
    _, ours = codec.decode_header(b"\x00\x3c\x00\x00" + (0).to_bytes(8, "big") + payload)
    assert ours.headers == headers


async def test_a_delivery_whose_properties_do_not_decode_is_rejected_and_the_next_one_arrives() -> None:
    """RabbitMQ refuses such a table at publish (541), so this feeds the frames to a channel directly."""
    from celeriac._amqp.wire.channel import Channel, Delivered
    from celeriac._amqp.wire.connection import Connection

    connection = Connection(heartbeat=0)
    connection._opening = None
    channel = Channel(connection, 1)
    connection.channels[1] = channel
    got: list[Delivered] = []
    channel._consumers["t"] = (got.append, False)
    bad_table = b"\x01kZ\x00\x00"  # type 'Z' does not exist
    bad_props = (0x2000).to_bytes(2, "big") + len(bad_table).to_bytes(4, "big") + bad_table
    stream = b""
    for tag, props in ((7, bad_props), (8, encode.encode_properties(codec.Properties(headers={"k": 1})))):
        deliver = Basic.Deliver(consumer_tag="t", delivery_tag=tag, exchange="", routing_key="q")
        stream += pframe.marshal(deliver, 1)
        stream += encode.frame(
            codec.FRAME_HEADER, 1, (60).to_bytes(2, "big") + bytes(2) + (2).to_bytes(8, "big") + props
        )
        stream += encode.frame(codec.FRAME_BODY, 1, b"hi")
    connection.data_received(stream)
    assert [(m.delivery_tag, m.properties.headers, m.body) for m in got] == [(8, {"k": 1}, b"hi")]
    ((_, _, reject),) = _frames(b"".join(connection._out))
    method = codec.decode_method(reject)
    assert (type(method), method.delivery_tag, method.requeue) == (Basic.Reject, 7, False)
    assert not connection.is_closed


def test_headers_over_one_frame_are_refused_before_anything_is_sent() -> None:
    headers = {"argsrepr": "x" * 140_000}  # Celery's argsrepr of a big argument, say
    with pytest.raises(ValueError, match="over one frame"):
        encode.publish(1, "", "q", False, b"{}", codec.Properties(headers=headers), frame_max=131072)
