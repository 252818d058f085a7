"""Serializers: kombu-compatible JSON (checked against the installed kombu), the registry, content negotiation."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import pickle
import sys
import uuid
from typing import Any

import kombu.serialization
import pytest
from kombu.utils import json as kombu_json

from celeriac.errors import ConfigurationError, ContentDisallowed, DecodeError
from celeriac.protocol import serializers
from celeriac.protocol.serializers import json_dumps, json_loads

UTC = dt.UTC
JSON_ONLY = frozenset({"application/json"})
EVERYTHING = serializers.normalize_accept(["json", "msgpack", "pickle"])

SPECIAL_VALUES = [
    pytest.param(b"bytes", id="utf8-bytes"),
    pytest.param(b"\xff\x00", id="binary-bytes"),
    pytest.param(b"", id="empty-bytes"),
    pytest.param(uuid.UUID("12345678123456781234567812345678"), id="uuid"),
    pytest.param(decimal.Decimal("1.10"), id="decimal"),
    pytest.param(dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), id="aware-datetime"),
    pytest.param(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5))), id="offset-dt"),
    pytest.param(dt.datetime(2024, 1, 2), id="naive-datetime"),
    pytest.param(dt.date(2024, 1, 2), id="date"),
    pytest.param(dt.time(3, 4, 5), id="time"),
    pytest.param(dt.time(3, 4, 5, 6, tzinfo=UTC), id="aware-time"),
]

PLAIN_VALUES = [
    pytest.param({"a": [1, 2.5, None, True, "é", "\u2603"]}, id="nested-plain"),
    pytest.param([], id="empty-list"),
    pytest.param({"__type__": "x", "__value__": 1, "other": 2}, id="three-key-marker-lookalike"),
    pytest.param({"__type__": "x"}, id="one-key-marker-lookalike"),
]


@pytest.mark.parametrize("value", SPECIAL_VALUES + PLAIN_VALUES)
def test_json_round_trip_and_byte_compatibility_with_kombu(value: Any) -> None:
    ours = json_dumps(value)
    assert ours == kombu_json.dumps(value)
    assert json_loads(ours) == value
    assert json_loads(ours.encode()) == value
    assert kombu_json.loads(ours) == value


@pytest.mark.parametrize("value", SPECIAL_VALUES)
def test_json_reads_what_kombu_writes(value: Any) -> None:
    assert json_loads(kombu_json.dumps(value)) == value
    assert type(json_loads(kombu_json.dumps(value))) is type(value)


def test_json_wire_forms_match_the_captured_sample() -> None:
    # celery-wire.md §1.4, captured from echo.delay(...)
    value = [
        b"bytes",
        b"\xff\x00",
        uuid.UUID("12345678123456781234567812345678"),
        decimal.Decimal("1.10"),
        dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        dt.date(2024, 1, 2),
        dt.time(3, 4, 5),
    ]
    assert json_dumps(value) == (
        '[{"__type__": "bytes", "__value__": "bytes"}, '
        '{"__type__": "base64", "__value__": "/wA="}, '
        '{"__type__": "uuid", "__value__": {"hex": "12345678123456781234567812345678"}}, '
        '{"__type__": "decimal", "__value__": "1.10"}, '
        '{"__type__": "datetime", "__value__": "2024-01-02T03:04:05.678901+00:00"}, '
        '{"__type__": "date", "__value__": "2024-01-02"}, '
        '{"__type__": "time", "__value__": "03:04:05"}]'
    )


def test_mixed_document_is_byte_identical_to_kombu() -> None:
    doc = {
        "when": dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        "ids": (uuid.UUID(int=1), uuid.UUID(int=2)),
        "blob": {"raw": b"\x00\x01\x02", "text": "naïve"},
        "n": [decimal.Decimal("-0.0001"), 1e100, -3],
    }
    assert json_dumps(doc) == kombu_json.dumps(doc)
    back = json_loads(json_dumps(doc))
    assert back["ids"] == [uuid.UUID(int=1), uuid.UUID(int=2)]  # tuples travel as arrays
    assert back["blob"]["raw"] == b"\x00\x01\x02"


def test_json_objects_with_dunder_json_are_replaced_by_its_result() -> None:
    class Point:
        def __json__(self) -> dict[str, int]:
            return {"x": 1, "y": 2}

    assert json_dumps({"p": Point()}) == kombu_json.dumps({"p": Point()}) == '{"p": {"x": 1, "y": 2}}'


def test_uuid_version_key_from_kombu_5_3_is_accepted_and_ignored() -> None:
    hex_ = uuid.uuid1().hex  # not a version-4 id: honouring "version": 4 would alter its bits
    text = json.dumps({"__type__": "uuid", "__value__": {"hex": hex_, "version": 4}})
    assert json_loads(text) == uuid.UUID(hex=hex_)


def test_unserializable_values_raise_type_error() -> None:
    with pytest.raises(TypeError, match="set"):
        json_dumps({1, 2})
    with pytest.raises(TypeError):
        json_dumps(object())


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"__type__": "frobnicate", "__value__": 1}', id="unknown-marker"),
        pytest.param('{"__type__": 3, "__value__": 1}', id="non-string-marker"),
        pytest.param('{"__type__": "decimal", "__value__": "one"}', id="bad-decimal"),
        pytest.param('{"__type__": "decimal", "__value__": 1}', id="decimal-not-string"),
        pytest.param('{"__type__": "datetime", "__value__": "yesterday"}', id="bad-datetime"),
        pytest.param('{"__type__": "date", "__value__": null}', id="null-date"),
        pytest.param('{"__type__": "time", "__value__": "25:00"}', id="bad-time"),
        pytest.param('{"__type__": "base64", "__value__": "!!!"}', id="bad-base64"),
        pytest.param('{"__type__": "uuid", "__value__": "1234"}', id="uuid-not-object"),
        pytest.param('{"__type__": "uuid", "__value__": {"hex": "zz"}}', id="bad-uuid-hex"),
        pytest.param('{"__type__": "bytes", "__value__": []}', id="bytes-not-string"),
        pytest.param("{not json", id="garbage"),
        pytest.param("", id="empty"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="too-deep"),
    ],
)
def test_json_loads_raises_decode_error_only(text: str) -> None:
    with pytest.raises(DecodeError):
        json_loads(text)


def test_json_loads_rejects_invalid_utf8() -> None:
    with pytest.raises(DecodeError, match="invalid JSON"):
        json_loads(b'"\xff"')


# -- registry -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type", "encoding"),
    [
        ("json", "application/json", "utf-8"),
        ("msgpack", "application/x-msgpack", "binary"),
        ("pickle", "application/x-python-serialize", "binary"),
    ],
)
def test_serializers_match_kombu_names_and_bytes(name: str, content_type: str, encoding: str) -> None:
    value = [1, "two", {"three": [3.0, None]}]
    ours = serializers.dumps(value, name)
    assert ours[:2] == (content_type, encoding)
    assert serializers.for_name(name)(value) == ours
    assert serializers.content_type_of(name) == content_type
    assert serializers.content_type_of(content_type) == content_type
    # kombu reads ours, and we read kombu's
    assert kombu.serialization.loads(ours[2], content_type, encoding, accept=[content_type]) == value
    _, _, theirs = kombu.serialization.dumps(value, serializer=name)
    if isinstance(theirs, str):  # kombu hands JSON back as text; the wire carries its UTF-8 bytes
        theirs = theirs.encode()
    assert serializers.loads(theirs, content_type, encoding, EVERYTHING) == value
    if name != "pickle":  # pickle bytes depend on the protocol number chosen; the value is what must agree
        assert ours[2] == theirs


def test_unknown_serializer_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown serializer 'jsno'; did you mean 'json'\?"):
        serializers.for_name("jsno")
    with pytest.raises(ConfigurationError, match="unknown serializer 'yaml'"):
        serializers.dumps(1, "yaml")
    with pytest.raises(ConfigurationError, match="'msgpak'; did you mean 'msgpack'"):
        serializers.content_type_of("msgpak")


def test_normalize_accept_maps_names_and_types() -> None:
    accepted = serializers.normalize_accept(["json", "application/x-python-serialize"])
    assert accepted == frozenset({"application/json", "application/x-python-serialize"})
    assert serializers.normalize_accept("msgpack") == frozenset({"application/x-msgpack"})
    assert serializers.normalize_accept([]) == frozenset()
    with pytest.raises(ConfigurationError, match="did you mean 'pickle'"):
        serializers.normalize_accept(["json", "pikle"])


def test_missing_content_type_means_json() -> None:
    assert serializers.loads(b'{"a": 1}', None, None, JSON_ONLY) == {"a": 1}
    assert serializers.loads(b'{"a": 1}', "", "utf-8", JSON_ONLY) == {"a": 1}
    assert serializers.loads(b"[1]", "application/json; charset=utf-8", "utf-8", JSON_ONLY) == [1]


def test_json_body_in_another_text_encoding_is_read() -> None:
    body = '["é"]'.encode("utf-16")
    assert serializers.loads(body, "application/json", "utf-16", JSON_ONLY) == ["é"]
    with pytest.raises(DecodeError, match="no-such-codec"):
        serializers.loads(b"[]", "application/json", "no-such-codec", JSON_ONLY)


def test_content_type_outside_accept_is_refused() -> None:
    with pytest.raises(ContentDisallowed) as info:
        serializers.loads(b"\x91\x01", "application/x-msgpack", "binary", JSON_ONLY)
    assert info.value.content_type == "application/x-msgpack"
    with pytest.raises(ContentDisallowed):
        serializers.loads(b"{}", None, None, frozenset({"application/x-msgpack"}))


UNPICKLED: list[str] = []


def _record_unpickling(marker: str) -> str:
    UNPICKLED.append(marker)
    return marker


class _Tripwire:
    """Pickles to a call of `_record_unpickling`: proof of whether the bytes were ever unpickled."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _record_unpickling, ("ran",)


def test_pickle_is_never_loaded_unless_accepted() -> None:
    UNPICKLED.clear()
    _, _, body = serializers.dumps(_Tripwire(), "pickle")
    with pytest.raises(ContentDisallowed):
        serializers.loads(body, "application/x-python-serialize", "binary", JSON_ONLY)
    assert UNPICKLED == []
    accepted = serializers.normalize_accept(["json", "pickle"])
    assert serializers.loads(body, "application/x-python-serialize", "binary", accepted) == "ran"
    assert UNPICKLED == ["ran"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{"),
        ("application/json", b"\xff\xfe"),
        ("application/x-msgpack", b"\xc1"),  # a reserved msgpack byte
        ("application/x-msgpack", b"\x92\x01"),  # truncated array
        ("application/x-msgpack", b"\x81\x91\x01\x02"),  # a map whose key is a list: unhashable
        ("application/x-python-serialize", b"garbage"),
        ("application/x-python-serialize", pickle.dumps(1)[:-1]),
        ("application/x-python-serialize", b"cno_such_module_xyz\nThing\n."),
    ],
)
def test_bad_bodies_raise_decode_error(content_type: str, body: bytes) -> None:
    with pytest.raises(DecodeError):
        serializers.loads(body, content_type, "binary", EVERYTHING)


def test_accepted_but_unknown_content_type_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="no serializer for content type 'application/x-yaml'"):
        serializers.loads(b"a: 1", "application/x-yaml", "utf-8", frozenset({"application/x-yaml"}))


def test_missing_msgpack_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)  # makes `import msgpack` fail, as when not installed
    with pytest.raises(ConfigurationError, match=r"celeriac\[msgpack\]"):
        serializers.for_name("msgpack")
    with pytest.raises(ConfigurationError):
        serializers.loads(b"\x90", "application/x-msgpack", "binary", EVERYTHING)
    assert serializers.normalize_accept(["msgpack"]) == frozenset({"application/x-msgpack"})


# -- the fast read of marker-free text ------------------------------------------------------------------


@pytest.mark.parametrize("with_orjson", [True, False], ids=["orjson", "json-module"])
@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, 2.5, -0.0, 1e308, true, false, null, "x"], "b": {}}',
        '{"big": 123456789012345678901234567890, "neg": -98765432109876543210}',  # beyond orjson's 64 bits
        "[NaN, Infinity, -Infinity]",  # what Python's json writes for these floats; orjson refuses them
        '{"k": 1, "k": 2}',  # duplicate keys: the last one wins in both
        '"\\u00e9\\ud83d\\ude00"',  # escapes take the careful path
        '{"nested": ' + "[" * 900 + "]" * 900 + "}",
        '  {"pad": 1}  ',
        "0.1",
        "[2.2250738585072011e-308, 1.7976931348623157e308, 1e400, 5e-324, 123456789012345678.5]",
        "[9223372036854775807, -9223372036854775808, 999999999999999999]",
    ],
)
def test_fast_json_read_matches_the_json_module(text: str, with_orjson: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not with_orjson:
        monkeypatch.setattr(serializers, "orjson", None)
    expected = json.loads(text)
    for form in (text, text.encode()):
        got = json_loads(form)
        assert repr(got) == repr(expected)  # repr: NaN != NaN, and 1 == 1.0 == True would hide a type change


@pytest.mark.parametrize("with_orjson", [True, False], ids=["orjson", "json-module"])
def test_fast_json_read_fails_like_the_careful_one(with_orjson: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not with_orjson:
        monkeypatch.setattr(serializers, "orjson", None)
    for bad in ("{not json", "", b'"\xff"', "[" * 100_000 + "]" * 100_000, b"\xef\xbb\xbf[1]x"):
        with pytest.raises(DecodeError):
            json_loads(bad)
