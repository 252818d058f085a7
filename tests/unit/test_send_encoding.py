"""The send path's encoders: ``json_dumps`` on its reused C encoder writes kombu's bytes for any JSON value, and
`new_id` makes version-4 UUID text."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kombu.utils import json as kombu_json

from celeriac.protocol.ids import new_id
from celeriac.protocol.message import Message
from celeriac.protocol.serializers import json_dumps
from celeriac.transports.redis import envelope

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_json_dumps_writes_what_kombu_writes(value: Any) -> None:
    assert json_dumps(value) == kombu_json.dumps(value)


def test_a_container_holding_itself_is_a_value_error() -> None:
    looped: list[Any] = [1]
    looped.append(looped)
    with pytest.raises(ValueError, match="Circular reference"):
        json_dumps({"a": looped})


def test_threads_encoding_one_object_at_once_all_succeed() -> None:
    # Values that go through the Python ``default`` hook let threads switch in the middle of an encoding: a table
    # of containers being written, shared between calls, would then see another call's entries (600 of these
    # 800 encodings failed with "Circular reference detected" when tried with one).
    when, amount = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), decimal.Decimal("1.5")
    shared = {"headers": {f"h{i}": [i, {"deep": "x" * 50, "when": when, "amount": amount}] for i in range(200)}}
    expected = kombu_json.dumps(shared)
    failures: list[BaseException] = []

    def encode() -> None:
        for _ in range(200):
            try:
                assert json_dumps(shared) == expected
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=encode) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_new_id_is_uuid4_text_and_unique() -> None:
    made = [new_id() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    for text in made[:1000]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_envelope_is_the_json_of_its_fields() -> None:
    message = Message(
        body=b"[[1], {}, {}]",
        headers={"id": "x", "n": 1, "nested": [None, {"é": 2.5}]},
        properties={"correlation_id": "x", "priority": 3, "expiration": "100", "delivery_mode": 1},
    )
    text = envelope.encode(message, "ex", "rk", delivery_tag="tag")
    assert text == kombu_json.dumps(
        {
            "body": "W1sxXSwge30sIHt9XQ==",
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"id": "x", "n": 1, "nested": [None, {"é": 2.5}]},
            "properties": {
                "correlation_id": "x",
                "delivery_mode": 1,
                "expiration": "100",
                "delivery_info": {"exchange": "ex", "routing_key": "rk"},
                "priority": 3,
                "body_encoding": "base64",
                "delivery_tag": "tag",
            },
        }
    )
