"""Convert between broker messages and `TaskMessage`: encode protocol 2, decode protocols 2 and 1.

Encoding writes what Celery 5.7 writes (celery-wire.md §1.1-1.3): every header in Celery's order, the
properties, and the body ``[args, kwargs, embed]``, optionally compressed.

Decoding is the worker's first contact with untrusted bytes, so its promise is narrow: it returns a
`TaskMessage` whose fields have the types the dataclass declares, or raises `DecodeError` (with the reason) or
`ContentDisallowed` (from content negotiation), and nothing else, whatever the input. Protocol 1 messages and
"hybrid" ones (protocol-2 headers with a protocol-1 dict body, §1.8) are converted to the same `TaskMessage`.
"""

from __future__ import annotations

import bz2
import datetime as dt
import difflib
import lzma
import zlib
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any

from celeriac.errors import ConfigurationError, DecodeError
from celeriac.protocol import serializers
from celeriac.protocol.message import Embed, Message, TaskMessage

UTC = dt.UTC
REPR_LIMIT = 1024
EMBED_KEYS = ("callbacks", "errbacks", "chain", "chord")

# Every header with a TaskMessage field, in the order Celery writes them (celery-wire.md §1.1). Anything else
# a message carries is kept in `TaskMessage.extra_headers`, except `compression`, which describes the body.
KNOWN_HEADERS = (
    "lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit",
    "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result", "replaced_task_nesting",
    "stamped_headers", "stamps",
)  # fmt: skip
_KNOWN = frozenset(KNOWN_HEADERS)
_NOT_EXTRA = _KNOWN | {"compression"}

# -- compression (kombu's MIME types, celery-wire.md §1.2) -------------------------------------------------

_COMPRESSORS: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
    # zlib streams travel as "application/x-gzip": a kombu naming quirk every Celery client shares.
    "application/x-gzip": (zlib.compress, zlib.decompress),
    "application/x-bz2": (bz2.compress, bz2.decompress),
    "application/x-lzma": (lzma.compress, lzma.decompress),
}
_COMPRESSION_NAMES = {
    "zlib": "application/x-gzip",
    "gzip": "application/x-gzip",
    "bz2": "application/x-bz2",
    "bzip2": "application/x-bz2",
    "lzma": "application/x-lzma",
    "xz": "application/x-lzma",
}


def compression_type(name: str) -> str:
    """The MIME type for compression ``name`` (``zlib``, ``bz2``, ``lzma``, or a MIME type we support).

    Raises:
        ConfigurationError: an unknown compression, naming the closest known one.
    """
    if name in _COMPRESSORS:
        return name
    if name in _COMPRESSION_NAMES:
        return _COMPRESSION_NAMES[name]
    close = difflib.get_close_matches(name, list(_COMPRESSION_NAMES), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(_COMPRESSION_NAMES))}"
    raise ConfigurationError(f"unknown compression {name!r}; {hint}")


def _decompress(body: bytes, compression: Any) -> bytes:
    codec = _COMPRESSORS.get(compression) if isinstance(compression, str) else None
    if codec is None:
        raise DecodeError(f"unsupported compression {compression!r}")
    try:
        return codec[1](body)
    except (zlib.error, OSError, ValueError, EOFError, lzma.LZMAError) as exc:
        raise DecodeError(f"cannot decompress {compression} body: {exc}") from exc


# -- encoding ----------------------------------------------------------------------------------------------


def safe_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters, for ``argsrepr``/``kwargsrepr``; never raises."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__, or nesting deeper than the recursion limit
        text = f"<unrepresentable {type(value).__name__}>"
    return text[:limit]


def full_embed(embed: Mapping[str, Any] | None) -> dict[str, Any]:
    """``embed`` with all four keys present (null when unset), in Celery's order, extra keys kept after."""
    given = dict(embed or {})
    return {**{key: given.pop(key, None) for key in EMBED_KEYS}, **given}


def encode_body(args: Sequence[Any], kwargs: Mapping[str, Any], embed: Mapping[str, Any] | None) -> list[Any]:
    """The protocol-2 body value ``[args, kwargs, embed]``, not yet serialized."""
    return [list(args), dict(kwargs), full_embed(embed)]


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _expiration(expires: dt.datetime, now: dt.datetime) -> str:
    # AMQP `expiration`: milliseconds left, as a string; "0" when already past (celery-wire.md §1.2).
    return str(max(0, int((expires - now).total_seconds() * 1000)))


def encode_task(
    task: TaskMessage,
    serializer: str = "json",
    compression: str | None = None,
    *,
    now: dt.datetime | None = None,
) -> Message:
    """Build the protocol-2 broker message for ``task``. Never blocks.

    ``root_id`` defaults to the task's own id (a top-level call), ``argsrepr``/``kwargsrepr`` to the
    truncated ``repr()`` of the arguments, ``correlation_id`` to the id. When ``expires`` is set the AMQP
    ``expiration`` property is derived from it and ``now`` (default: the current time).

    Raises:
        ConfigurationError: unknown serializer or compression.
        TypeError: the arguments cannot be serialized.
    """
    hard, soft = task.timelimit
    headers: dict[str, Any] = {
        "lang": task.lang,
        "task": task.task,
        "id": task.id,
        "shadow": task.shadow,
        "eta": _iso(task.eta),
        "expires": _iso(task.expires),
        "group": task.group,
        "group_index": task.group_index,
        "retries": task.retries,
        "timelimit": [hard, soft],
        "root_id": task.root_id or task.id,
        "parent_id": task.parent_id,
        "argsrepr": task.argsrepr if task.argsrepr is not None else safe_repr(tuple(task.args)),
        "kwargsrepr": task.kwargsrepr if task.kwargsrepr is not None else safe_repr(dict(task.kwargs)),
        "origin": task.origin,
        "ignore_result": task.ignore_result,  # null: "use the task's own setting", as Celery reads it
        "replaced_task_nesting": task.replaced_task_nesting,
        "stamped_headers": task.stamped_headers,
        "stamps": dict(task.stamps),
    }
    # Extra headers may not overwrite a typed field (or fake a compression header): the fields are the truth.
    headers.update({k: v for k, v in task.extra_headers.items() if k not in _NOT_EXTRA})

    content_type, content_encoding, body = serializers.dumps(
        encode_body(task.args, task.kwargs, task.embed), serializer
    )
    if compression is not None:
        mime = compression_type(compression)
        body = _COMPRESSORS[mime][0](body)
        headers["compression"] = mime

    properties: dict[str, Any] = {
        "correlation_id": task.correlation_id or task.id,
        "reply_to": task.reply_to or "",
        "delivery_mode": task.delivery_mode,
        "priority": task.priority or 0,
    }
    if task.expires is not None:
        properties["expiration"] = _expiration(task.expires, now or dt.datetime.now(UTC))
    return Message(
        body=body,
        content_type=content_type,
        content_encoding=content_encoding,
        headers=headers,
        properties=properties,
    )


# -- decoding: shape checks, each raising DecodeError that names the field ---------------------------------


def parse_datetime(value: str | dt.datetime, tz: dt.tzinfo = UTC) -> dt.datetime:
    """Parse an ISO 8601 timestamp (or take a datetime) and make it timezone-aware.

    A value without an offset is read as local time in ``tz``.

    Raises:
        DecodeError: ``value`` is not an ISO 8601 string or a datetime.
    """
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise DecodeError(f"bad ISO 8601 datetime {value!r}") from exc
    else:
        raise DecodeError(f"bad datetime {value!r}: expected an ISO 8601 string")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


def _text(fields: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = fields.get(key)
    if required and not (isinstance(value, str) and value):
        raise DecodeError(f"{key!r} must be a non-empty string, got {value!r}")
    if value is not None and not isinstance(value, str):
        raise DecodeError(f"{key!r} must be a string or null, got {value!r}")
    return value


def _int(fields: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = fields.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):  # bool is an int to Python, not to us
        raise DecodeError(f"{key!r} must be an integer, got {value!r}")
    return value


def _when(fields: Mapping[str, Any], key: str, tz: dt.tzinfo) -> dt.datetime | None:
    value = fields.get(key)
    if value is None:
        return None
    try:
        return parse_datetime(value, tz)
    except DecodeError as exc:
        raise DecodeError(f"{key!r}: {exc.reason}") from exc


def _timelimit(fields: Mapping[str, Any]) -> tuple[float | None, float | None]:
    value = fields.get("timelimit")
    if value is None:
        return None, None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise DecodeError(f"'timelimit' must be [hard, soft], got {value!r}")
    for limit in value:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | float)):
            raise DecodeError(f"'timelimit' must hold numbers or null, got {value!r}")
    return value[0], value[1]


def _args(value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):  # pickle bodies carry tuples
        raise DecodeError(f"args must be a list, got {type(value).__name__}")
    return tuple(value)


def _kwargs(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise DecodeError(f"kwargs must be an object with string keys, got {safe_repr(value, 80)}")
    return value


def _signature_list(value: Any, key: str) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(s, dict) for s in value):
        raise DecodeError(f"embed {key!r} must be a list of signatures or null")
    return list(value)


def _embed(value: Any) -> Embed:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise DecodeError(f"embed must be an object or null, got {type(value).__name__}")
    chord = value.get("chord")
    if chord is not None and not isinstance(chord, dict):
        raise DecodeError("embed 'chord' must be a signature or null")
    return Embed(
        callbacks=_signature_list(value.get("callbacks"), "callbacks"),
        errbacks=_signature_list(value.get("errbacks"), "errbacks"),
        chain=_signature_list(value.get("chain"), "chain"),
        chord=chord,
    )


def _stamps(fields: Mapping[str, Any]) -> tuple[list[str] | None, dict[str, Any]]:
    names, stamps = fields.get("stamped_headers"), fields.get("stamps")
    if names is not None and (not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names)):
        raise DecodeError(f"'stamped_headers' must be a list of strings or null, got {names!r}")
    if stamps is None:
        stamps = {}
    if not isinstance(stamps, dict) or not all(isinstance(k, str) for k in stamps):
        raise DecodeError(f"'stamps' must be an object, got {safe_repr(stamps, 80)}")
    return (None if names is None else list(names)), stamps


def _build(
    fields: Mapping[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    embed: Embed,
    message: Message,
    tz: dt.tzinfo,
) -> TaskMessage:
    """One `TaskMessage` from protocol-2 style ``fields`` (headers), the body parts and the properties."""
    ignore_result = fields.get("ignore_result")
    if ignore_result is not None and not isinstance(ignore_result, bool):
        raise DecodeError(f"'ignore_result' must be a boolean or null, got {ignore_result!r}")
    stamped_headers, stamps = _stamps(fields)
    props = message.properties
    argsrepr = _text(fields, "argsrepr")
    kwargsrepr = _text(fields, "kwargsrepr")
    return TaskMessage(
        id=_text(fields, "id", required=True) or "",
        task=_text(fields, "task", required=True) or "",
        args=args,
        kwargs=kwargs,
        embed=embed,
        lang=_text(fields, "lang") or "py",
        shadow=_text(fields, "shadow"),
        eta=_when(fields, "eta", tz),
        expires=_when(fields, "expires", tz),
        group=_text(fields, "group"),
        group_index=_int(fields, "group_index", None),
        retries=_int(fields, "retries", 0) or 0,
        timelimit=_timelimit(fields),
        root_id=_text(fields, "root_id"),
        parent_id=_text(fields, "parent_id"),
        argsrepr=argsrepr if argsrepr is not None else safe_repr(args),
        kwargsrepr=kwargsrepr if kwargsrepr is not None else safe_repr(kwargs),
        origin=_text(fields, "origin"),
        ignore_result=ignore_result,
        replaced_task_nesting=_int(fields, "replaced_task_nesting", 0) or 0,
        stamped_headers=stamped_headers,
        stamps=stamps,
        extra_headers={k: v for k, v in message.headers.items() if k not in _NOT_EXTRA},
        correlation_id=_text(props, "correlation_id"),
        reply_to=_text(props, "reply_to") or None,  # Celery sends "" for "no reply queue"
        priority=_int(props, "priority", None),
        delivery_mode=_int(props, "delivery_mode", 2) or 2,
    )


_STR, _LIST, _DICT = str, list, dict
_TEXT_OR_NONE = (str, type(None))
_INT_OR_NONE = (int, type(None))
_BOOL_OR_NONE = (bool, type(None))
_NO_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_NO_TIMELIMIT = (None, [None, None])
_NO_STAMPS: tuple[None, dict[str, Any]] = (None, {})


def _build_common(
    headers: dict[str, Any], args: Any, kwargs: Any, embed: Any, message: Message, tz: dt.tzinfo
) -> TaskMessage | None:
    """`_build` for the shape nearly every protocol-2 message has, or None to take the careful path.

    Each value is checked by its exact type against the common case (so ``True`` is not taken for an
    integer); whatever is unusual (a wrong type, a time or time limit, stamps, links in the embed) returns
    None and `_build` then decides, naming the field when the message is bad. Both paths build the same
    `TaskMessage`; the unit tests feed every message through both (`test_codec.py`). The checks are written
    out one by one, each value read once: this runs for every message a worker takes.
    """
    get = headers.get
    task_id, name, argsrepr, kwargsrepr = get("id"), get("task"), get("argsrepr"), get("kwargsrepr")
    lang, shadow, group, root_id, parent_id = get("lang"), get("shadow"), get("group"), get("root_id"), get("parent_id")
    origin, group_index, retries, nesting = (
        get("origin"),
        get("group_index"),
        get("retries"),
        get("replaced_task_nesting"),
    )
    ignore_result = get("ignore_result")
    props = message.properties
    if (
        type(task_id) is not _STR
        or not task_id
        or type(name) is not _STR
        or not name
        or type(argsrepr) is not _STR
        or type(kwargsrepr) is not _STR
        or type(args) is not _LIST
        or type(kwargs) is not _DICT
        or type(props) is not _DICT
        or not (embed is None or embed == _NO_EMBED)
        or get("eta") is not None
        or get("expires") is not None
        or get("stamped_headers") is not None
        or get("timelimit") not in _NO_TIMELIMIT
        or get("stamps") not in _NO_STAMPS
        or type(lang) not in _TEXT_OR_NONE
        or type(shadow) not in _TEXT_OR_NONE
        or type(group) not in _TEXT_OR_NONE
        or type(root_id) not in _TEXT_OR_NONE
        or type(parent_id) not in _TEXT_OR_NONE
        or type(origin) not in _TEXT_OR_NONE
        or type(group_index) not in _INT_OR_NONE
        or type(retries) not in _INT_OR_NONE
        or type(nesting) not in _INT_OR_NONE
        or type(ignore_result) not in _BOOL_OR_NONE
    ):
        return None
    correlation_id, reply_to = props.get("correlation_id"), props.get("reply_to")
    priority, delivery_mode = props.get("priority"), props.get("delivery_mode")
    if (
        type(correlation_id) not in _TEXT_OR_NONE
        or type(reply_to) not in _TEXT_OR_NONE
        or type(priority) not in _INT_OR_NONE
        or type(delivery_mode) not in _INT_OR_NONE
    ):
        return None
    for key in kwargs:
        if type(key) is not _STR:
            return None
    return TaskMessage(
        id=task_id,
        task=name,
        args=tuple(args),
        kwargs=kwargs,
        embed=Embed(callbacks=None, errbacks=None, chain=None, chord=None),
        lang=lang or "py",
        shadow=shadow,
        group=group,
        group_index=group_index,
        retries=retries or 0,
        root_id=root_id,
        parent_id=parent_id,
        argsrepr=argsrepr,
        kwargsrepr=kwargsrepr,
        origin=origin,
        ignore_result=ignore_result,
        replaced_task_nesting=nesting or 0,
        stamps={},
        extra_headers={} if headers.keys() <= _NOT_EXTRA else {k: v for k, v in headers.items() if k not in _NOT_EXTRA},
        correlation_id=correlation_id,
        reply_to=reply_to or None,
        priority=priority,
        delivery_mode=delivery_mode or 2,
    )


def _from_protocol1(body: dict[str, Any], message: Message, tz: dt.tzinfo) -> TaskMessage:
    """Protocol 1: everything in a dict body; ``utc`` says how to read naive times (celery-wire.md §1.8)."""
    utc = body.get("utc", True)
    fields = dict(body)
    if body.get("taskset") is not None:  # the old name of `group`, sent alongside it
        fields["group"] = body["taskset"]
    # protocol 1 has no argsrepr/kwargsrepr/stamps/...: only the protocol-2 names it shares are read.
    for absent in ("shadow", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
                   "replaced_task_nesting", "stamped_headers", "stamps"):  # fmt: skip
        fields.pop(absent, None)
    embed = _embed({"callbacks": body.get("callbacks"), "errbacks": body.get("errbacks"), "chord": body.get("chord")})
    args = _args(body.get("args", []))
    kwargs = _kwargs(body.get("kwargs", {}))
    return _build(fields, args, kwargs, embed, message, UTC if utc is not False else tz)


def _from_hybrid(body: dict[str, Any], message: Message, tz: dt.tzinfo) -> TaskMessage:
    """Protocol-2 headers with a protocol-1 dict body: headers win, the body fills what they lack."""
    fields = {**body, **{k: v for k, v in message.headers.items() if v is not None}}
    embed = _embed({key: body.get(key) for key in EMBED_KEYS})
    return _build(fields, _args(body.get("args", [])), _kwargs(body.get("kwargs", {})), embed, message, tz)


def decode_task(message: Message, accept: frozenset[str], tz: dt.tzinfo = UTC) -> TaskMessage:
    """Decode a task message of protocol 2 (or 1, or hybrid). Never blocks.

    ``accept`` is the set of accepted MIME types (see `serializers.normalize_accept`); ``tz`` is the zone of
    naive ``eta``/``expires`` values (the worker's ``timezone`` setting).

    Raises:
        ContentDisallowed: the content type is not in ``accept``.
        DecodeError: anything else wrong with the message; ``reason`` says what.
    """
    headers = message.headers
    # Only names this codec knows (nearly every message): string keys, no compression, no extra headers.
    known = type(headers) is dict and headers.keys() <= _KNOWN
    if not known and (not isinstance(headers, Mapping) or not all(map(isinstance, headers, repeat(str)))):
        raise DecodeError("headers must be a mapping with string keys")
    if type(message.properties) is not dict and not isinstance(message.properties, Mapping):
        raise DecodeError("properties must be a mapping")
    body_bytes = message.body
    if type(body_bytes) is not bytes:
        if not isinstance(body_bytes, bytes | bytearray | memoryview):
            raise DecodeError(f"body must be bytes, got {type(body_bytes).__name__}")
        body_bytes = bytes(body_bytes)
    compression = None if known else headers.get("compression")
    if compression is not None:
        body_bytes = _decompress(body_bytes, compression)
    body = serializers.loads(body_bytes, message.content_type, message.content_encoding, accept)

    if "task" in headers:
        if isinstance(body, dict):
            return _from_hybrid(body, message, tz)
        if not isinstance(body, list | tuple) or len(body) != 3:
            raise DecodeError("protocol 2 body must be [args, kwargs, embed]")
        args, kwargs, embed = body
        if type(headers) is dict:
            common = _build_common(headers, args, kwargs, embed, message, tz)
            if common is not None:
                return common
        return _build(headers, _args(args), _kwargs(kwargs), _embed(embed), message, tz)
    if isinstance(body, dict) and "task" in body:
        return _from_protocol1(body, message, tz)
    raise DecodeError("not a task message: no 'task' header and the body is not a protocol 1 task")


__all__ = [
    "KNOWN_HEADERS",
    "compression_type",
    "decode_task",
    "encode_body",
    "encode_task",
    "full_embed",
    "parse_datetime",
    "safe_repr",
]
