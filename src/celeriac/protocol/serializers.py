"""Turn values into message bodies and back: kombu-compatible JSON, msgpack, pickle, and content negotiation.

Three serializers exist, under kombu's names and MIME types (celery-wire.md §1.2):

=========  ===============================  ================
name       content type                     content encoding
=========  ===============================  ================
json       application/json                 utf-8
msgpack    application/x-msgpack            binary
pickle     application/x-python-serialize   binary
=========  ===============================  ================

JSON is kombu's flavour (§1.4): values JSON has no type for travel as ``{"__type__": ..., "__value__": ...}``
objects, and the output is byte-for-byte what ``kombu.utils.json.dumps`` writes for the same value.

Reading is where the danger is: `loads` refuses any content type that is not in ``accept`` (so pickle, which
can run code, is only ever loaded when the caller accepted it), and every failure of the bytes themselves
surfaces as `DecodeError`, never as the decoder's own exception.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import difflib
import functools
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from celeriac.errors import ConfigurationError, ContentDisallowed, DecodeError

try:  # optional: parses a task envelope 3x and a small body 6x faster than the json module (bench/README.md)
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

JSON_TYPE = "application/json"
MSGPACK_TYPE = "application/x-msgpack"
PICKLE_TYPE = "application/x-python-serialize"

# Protocol 4 is what every Python >= 3.4 reads; a higher one would lock out older clients for no gain here.
PICKLE_PROTOCOL = 4

# -- kombu JSON --------------------------------------------------------------------------------------------


def _encode_special(value: Any) -> Any:
    """The ``default`` hook of `json.dumps`: wrap a value JSON has no type for, or raise TypeError."""
    # datetime before date: a datetime *is* a date, and must keep its time.
    if isinstance(value, dt.datetime):
        return {"__type__": "datetime", "__value__": value.isoformat()}
    if isinstance(value, dt.date):
        return {"__type__": "date", "__value__": value.isoformat()}
    if isinstance(value, dt.time):
        return {"__type__": "time", "__value__": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"__type__": "decimal", "__value__": str(value)}
    if isinstance(value, uuid.UUID):
        return {"__type__": "uuid", "__value__": {"hex": value.hex}}
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return {"__type__": "bytes", "__value__": raw.decode("utf-8")}
        except UnicodeDecodeError:
            return {"__type__": "base64", "__value__": base64.b64encode(raw).decode("ascii")}
    json_method = getattr(value, "__json__", None)
    if callable(json_method):
        return json_method()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# What `json.dumps(obj, default=_encode_special)` builds on every call; made once, it is the same encoder (it keeps
# no state between calls, so threads may share it) and saves ~1.1 us of the 3.6 us a task body takes (timeit).
_ENCODER = json.JSONEncoder(default=_encode_special)
_NO_YES = (False, False, True)  # sort_keys, skipkeys, allow_nan: the encoder's defaults
# The C function that does its writing, made once too (`encode` makes one per call: ~1.4 us of an envelope's 4.9),
# without `check_circular`'s table, state that calls in other threads would share: a container holding itself
# ends in RecursionError instead, reported as the encoder reports it (`json_dumps`).
_WRITE = c_make_encoder and c_make_encoder(None, _encode_special, encode_basestring_ascii, None, ": ", ", ", *_NO_YES)


def json_dumps(obj: Any) -> str:
    """Serialize ``obj`` to kombu JSON text (ASCII only; tuples become arrays).

    Raises:
        TypeError: a value has no JSON form (a set, an arbitrary object without ``__json__``).
        ValueError: ``obj`` contains itself.
    """
    if _WRITE is None or type(obj) is str:  # no C encoder here (PyPy); a bare string is not a container
        return _ENCODER.encode(obj)
    try:
        return "".join(_WRITE(obj, 0))
    except RecursionError:
        raise ValueError("Circular reference detected (or nesting too deep for JSON)") from None


def _uuid_from(value: Any) -> uuid.UUID:
    # kombu 5.3.0 also sent "version"; it is implied by the hex, so it is ignored (celery-wire.md §1.4).
    if isinstance(value, dict) and isinstance(value.get("hex"), str):
        return uuid.UUID(hex=value["hex"])
    raise DecodeError(f"bad uuid value {value!r}: expected an object with a 'hex' string")


def _text(value: Any, kind: str) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"bad {kind} value {value!r}: expected a string")
    return value


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "bytes": lambda v: _text(v, "bytes").encode("utf-8"),
    "base64": lambda v: base64.b64decode(_text(v, "base64"), validate=True),
    "uuid": _uuid_from,
    "decimal": lambda v: decimal.Decimal(_text(v, "decimal")),
    "datetime": lambda v: dt.datetime.fromisoformat(_text(v, "datetime")),
    "date": lambda v: dt.date.fromisoformat(_text(v, "date")),
    "time": lambda v: dt.time.fromisoformat(_text(v, "time")),
}


def _decode_special(obj: dict[str, Any]) -> Any:
    """The ``object_hook`` of `json.loads`: unwrap ``{"__type__", "__value__"}`` objects."""
    if len(obj) != 2 or "__type__" not in obj or "__value__" not in obj:
        return obj
    type_name = obj["__type__"]
    decoder = _DECODERS.get(type_name) if isinstance(type_name, str) else None
    if decoder is None:
        raise DecodeError(f"unknown JSON type marker {type_name!r}")
    try:
        return decoder(obj["__value__"])
    except (ValueError, TypeError, ArithmeticError, binascii.Error) as exc:  # Decimal raises ArithmeticError
        raise DecodeError(f"bad {type_name} value {obj['__value__']!r}: {exc}") from exc


# Every digit becomes "9", so one substring test finds a run of 19 digits: an integer orjson might not hold in 64
# bits (it reads those as floats, silently). 1.7 us for a 900-byte envelope, against 22 us for a regex.
_DIGITS_AS_NINES = bytes.maketrans(b"012345678", b"999999999")
_LONG_NUMBER = b"9" * 19


def _plain(data: bytes) -> bool:
    """Whether ``data`` reads the same without the marker hook and with orjson (see `json_loads`)."""
    # A marker, or an escape that could spell one. The one-byte search for a backslash runs first: it is a
    # memchr, where the two-byte search for "\\u" costs as much as the rest of this check.
    if b"__type__" in data or (b"\\" in data and b"\\u" in data):
        return False
    return orjson is None or _LONG_NUMBER not in data.translate(_DIGITS_AS_NINES)


def json_loads(text: str | bytes) -> Any:
    """Parse kombu JSON text (bytes are read as UTF-8), turning type markers back into values.

    Text that cannot hold a type marker (no ``__type__``, and no ``\\u`` escape that could spell one) is first
    read without the marker hook, by orjson when it is installed (and the text has no integer too long for
    orjson's 64 bits): this runs for every message a worker takes. Whatever that fast read refuses (NaN,
    bad UTF-8, deep nesting, invalid JSON) is read again by the json module, so results and errors are the
    same either way.

    Raises:
        DecodeError: the text is not JSON, not UTF-8, too deeply nested, or has an unknown/bad type marker.
    """
    data: bytes | None
    if type(text) is bytes:  # what transports hand over: no copy, no check
        data = text
    else:
        try:
            data = text.encode() if isinstance(text, str) else bytes(text)
        except UnicodeEncodeError:  # lone surrogates: only the careful path reads (or refuses) them
            data = None
    if data is not None and _plain(data):
        try:
            if orjson is not None:
                return orjson.loads(data)
            return json.loads(text if isinstance(text, str) else data.decode())
        except (ValueError, TypeError, RecursionError):  # orjson.JSONDecodeError is a ValueError
            pass
    try:
        if isinstance(text, bytes | bytearray):
            text = bytes(text).decode("utf-8")
        return json.loads(text, object_hook=_decode_special)
    except DecodeError:
        raise
    except (
        ValueError,
        TypeError,
        RecursionError,
    ) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DecodeError(f"invalid JSON: {exc}") from exc


# -- msgpack and pickle ------------------------------------------------------------------------------------


def _msgpack() -> Any:
    # Imported on first use: msgpack is an optional dependency (celeriac[msgpack]).
    try:
        import msgpack
    except ImportError as exc:
        raise ConfigurationError(
            "the msgpack serializer needs the msgpack package: pip install 'celeriac[msgpack]'"
        ) from exc
    return msgpack


def _msgpack_dumps(obj: Any) -> bytes:
    data: bytes = _msgpack().packb(obj, use_bin_type=True)
    return data


def _msgpack_loads(body: bytes) -> Any:
    return _msgpack().unpackb(body, raw=False)


# pickle is imported only by an app that opted into it (JSON is the default; most workers never unpickle).
def _pickle_dumps(obj: Any) -> bytes:
    import pickle

    return pickle.dumps(obj, protocol=PICKLE_PROTOCOL)


def _pickle_loads(body: bytes) -> Any:
    import pickle

    return pickle.loads(body)  # reached only when the app accepts pickle (accept_content)


def _json_bytes(obj: Any) -> bytes:
    return json_dumps(obj).encode("utf-8")


# -- registry ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Serializer:
    name: str
    content_type: str
    content_encoding: str
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]


_SERIALIZERS = {
    s.name: s
    for s in (
        _Serializer("json", JSON_TYPE, "utf-8", _json_bytes, json_loads),
        _Serializer("msgpack", MSGPACK_TYPE, "binary", _msgpack_dumps, _msgpack_loads),
        _Serializer("pickle", PICKLE_TYPE, "binary", _pickle_dumps, _pickle_loads),
    )
}
_BY_TYPE = {s.content_type: s for s in _SERIALIZERS.values()}


def _unknown(what: str, value: str, known: Iterable[str]) -> ConfigurationError:
    known = sorted(known)
    close = difflib.get_close_matches(value, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return ConfigurationError(f"unknown {what} {value!r}; {hint}")


def _serializer(name: str) -> _Serializer:
    found = _SERIALIZERS.get(name)
    if found is None:
        raise _unknown("serializer", name, _SERIALIZERS)
    return found


def dumps(obj: Any, serializer: str = "json") -> tuple[str, str, bytes]:
    """Serialize ``obj`` with the serializer named ``serializer``.

    Returns:
        ``(content_type, content_encoding, body)``, ready to be a message's body and properties.

    Raises:
        ConfigurationError: the serializer is unknown, or its library (msgpack) is not installed.
        TypeError: ``obj`` cannot be represented by that serializer.
    """
    chosen = _serializer(serializer)
    return chosen.content_type, chosen.content_encoding, chosen.dumps(obj)


def for_name(name: str) -> Callable[[Any], tuple[str, str, bytes]]:
    """The `dumps` of serializer ``name``, checked now so a typo fails at configuration time.

    Raises:
        ConfigurationError: the serializer is unknown (the message suggests the closest name), or its library
            is not installed.
    """
    _serializer(name)
    if name == "msgpack":
        _msgpack()
    return functools.partial(dumps, serializer=name)


def content_type_of(name_or_type: str) -> str:
    """The MIME type of serializer ``name_or_type``; a MIME type (anything with a ``/``) is returned as is.

    Raises:
        ConfigurationError: an unknown serializer name.
    """
    if "/" in name_or_type:
        return name_or_type
    return _serializer(name_or_type).content_type


def normalize_accept(accept: Iterable[str]) -> frozenset[str]:
    """Turn an ``accept_content`` list of serializer names and/or MIME types into a set of MIME types.

    A single string is taken as a one-element list (``accept_content="json"`` is a common slip).

    Raises:
        ConfigurationError: an entry is neither a known name nor a known MIME type.
    """
    entries = [accept] if isinstance(accept, str) else list(accept)
    types: set[str] = set()
    for entry in entries:
        if entry in _BY_TYPE:
            types.add(entry)
        elif entry in _SERIALIZERS:
            types.add(_SERIALIZERS[entry].content_type)
        else:
            raise _unknown("content type", entry, [*_SERIALIZERS, *_BY_TYPE])
    return frozenset(types)


def _bare_type(content_type: str | None) -> str:
    # "application/json; charset=utf-8" names the same serializer as "application/json".
    bare = (content_type or "").split(";", 1)[0].strip().lower()
    return bare or JSON_TYPE


def _text_body(body: bytes, content_encoding: str | None) -> bytes:
    """Re-encode a JSON body sent in a text encoding other than UTF-8."""
    encoding = (content_encoding or "utf-8").lower()
    if encoding in ("utf-8", "utf8", "binary", "ascii-8bit", "ascii", "us-ascii"):
        return body
    try:
        return body.decode(encoding).encode("utf-8")
    except (LookupError, ValueError) as exc:
        raise DecodeError(f"cannot read body as {content_encoding!r}: {exc}") from exc


def check_accepted(content_type: str | None, accept: frozenset[str]) -> None:
    """Raise ContentDisallowed unless ``content_type`` (missing: JSON) is in ``accept``: the check `loads`
    makes, for callers that must make it before any byte is read (a compressed body, before decompressing)."""
    mime = _bare_type(content_type)
    if mime not in accept:
        raise ContentDisallowed(mime)


def loads(body: bytes, content_type: str | None, content_encoding: str | None, accept: frozenset[str]) -> Any:
    """Deserialize a message body, refusing content types the caller did not accept.

    A missing or empty ``content_type`` means JSON. Never blocks.

    Raises:
        ContentDisallowed: ``content_type`` is not in ``accept`` (checked before any byte is read).
        DecodeError: the body is not valid for its content type, or no serializer handles that type.
        ConfigurationError: msgpack was accepted but is not installed.
    """
    if content_type == JSON_TYPE and content_encoding == "utf-8" and JSON_TYPE in accept:  # nearly every task
        return json_loads(body)
    mime = _bare_type(content_type)
    if mime not in accept:
        raise ContentDisallowed(mime)
    chosen = _BY_TYPE.get(mime)
    if chosen is None:
        raise DecodeError(f"no serializer for content type {mime!r}")
    if chosen.name == "json":
        return json_loads(_text_body(body, content_encoding))
    if chosen.name == "msgpack":
        _msgpack()  # a missing library is a configuration problem, not a bad message
    try:
        return chosen.loads(body)
    except Exception as exc:
        # Untrusted bytes through msgpack or (accepted) pickle can fail in any way the library or an unpickled
        # class chooses; the caller must only ever see one kind of error for a bad body.
        raise DecodeError(f"invalid {chosen.name} body: {type(exc).__name__}: {exc}") from exc


__all__ = [
    "JSON_TYPE",
    "MSGPACK_TYPE",
    "PICKLE_TYPE",
    "check_accepted",
    "content_type_of",
    "dumps",
    "for_name",
    "json_dumps",
    "json_loads",
    "loads",
    "normalize_accept",
]
