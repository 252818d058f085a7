"""Convert between broker messages and `TaskMessage`: encode protocol 2, decode protocols 2 and 1.

Encoding writes what Celery 5.7 writes (celery-wire.md §1.1-1.3): every header in Celery's order, the
properties, and the body ``[args, kwargs, embed]``, optionally compressed.

Decoding is the worker's first contact with untrusted bytes, so its promise is narrow: it returns a
`TaskMessage` whose fields have the types the dataclass declares, or raises `DecodeError` (with the reason) or
`ContentDisallowed` (from content negotiation), and nothing else, whatever the input. Protocol 1 messages and
"hybrid" ones (protocol-2 headers with a protocol-1 dict body, §1.8) are converted to the same `TaskMessage`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from itertools import repeat
from typing import Any

from celeriac.errors import DecodeError
from celeriac.protocol.compressors import DEFAULT_MAX_MESSAGE_BYTES, compress, compression_type, decompress
from celeriac.protocol.fields import (
    EMBED_KEYS,
    KNOWN,
    KNOWN_HEADERS,
    NOT_EXTRA,
    build_task,
    check_args,
    check_embed,
    check_kwargs,
    parse_datetime,
    safe_repr,
)
from celeriac.protocol.message import Message, TaskMessage
from celeriac.protocol.serializers import check_accepted, dumps, loads

UTC = dt.UTC

# -- encoding ----------------------------------------------------------------------------------------------


def full_embed(embed: Mapping[str, Any] | None) -> dict[str, Any]:
    """``embed`` with all four keys present (null when unset), in Celery's order, extra keys kept after."""
    if embed is not None and len(embed) == 4 and tuple(embed) == EMBED_KEYS:
        return dict(embed)  # what `Sender.build` makes: the four keys, in order (a third of the general path)
    given = dict(embed or {})
    return {**{key: given.pop(key, None) for key in EMBED_KEYS}, **given}


def encode_body(args: Sequence[Any], kwargs: Mapping[str, Any], embed: Mapping[str, Any] | None) -> list[Any]:
    """The protocol-2 body value ``[args, kwargs, embed]``, not yet serialized."""
    return [list(args), dict(kwargs), full_embed(embed)]


def _args_repr(args: Sequence[Any]) -> str:
    return "()" if not args else safe_repr(tuple(args))


def _kwargs_repr(kwargs: Mapping[str, Any]) -> str:
    return "{}" if not kwargs else safe_repr(dict(kwargs))


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
        "argsrepr": task.argsrepr if task.argsrepr is not None else _args_repr(task.args),
        "kwargsrepr": task.kwargsrepr if task.kwargsrepr is not None else _kwargs_repr(task.kwargs),
        "origin": task.origin,
        "ignore_result": task.ignore_result,  # null: "use the task's own setting", as Celery reads it
        "replaced_task_nesting": task.replaced_task_nesting,
        "stamped_headers": task.stamped_headers,
        "stamps": dict(task.stamps),
    }
    # Extra headers may not overwrite a typed field (or fake a compression header): the fields are the truth.
    if task.extra_headers:
        headers.update({k: v for k, v in task.extra_headers.items() if k not in NOT_EXTRA})

    content_type, content_encoding, body = dumps(encode_body(task.args, task.kwargs, task.embed), serializer)
    if compression is not None:
        headers["compression"], body = compress(body, compression)

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


# -- decoding --------------------------------------------------------------------------------------------


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
    embed = check_embed(
        {"callbacks": body.get("callbacks"), "errbacks": body.get("errbacks"), "chord": body.get("chord")}
    )
    args = check_args(body.get("args", []))
    kwargs = check_kwargs(body.get("kwargs", {}))
    return build_task(fields, args, kwargs, embed, message, UTC if utc is not False else tz)


def _from_hybrid(body: dict[str, Any], message: Message, tz: dt.tzinfo) -> TaskMessage:
    """Protocol-2 headers with a protocol-1 dict body: headers win, the body fills what they lack."""
    fields = {**body, **{k: v for k, v in message.headers.items() if v is not None}}
    embed = check_embed({key: body.get(key) for key in EMBED_KEYS})
    args, kwargs = check_args(body.get("args", [])), check_kwargs(body.get("kwargs", {}))
    return build_task(fields, args, kwargs, embed, message, tz)


OFF_LOOP_BYTES = 256 * 1024
"""A body at least this long (or compressed at all) is worth decoding in a thread: see `decode_off_loop`."""


def decode_off_loop(message: Message) -> bool:
    """Whether decoding ``message`` may take long enough (milliseconds up to a fraction of a second: a body
    decompressed up to the cap, or a large one parsed) that an event loop should run `decode_task` in a
    thread. False for nearly every task message, so the common path pays no thread hop."""
    headers: Any = message.headers
    body: Any = message.body
    compressed = isinstance(headers, Mapping) and headers.get("compression") is not None
    return compressed or (isinstance(body, bytes | bytearray | memoryview) and len(body) >= OFF_LOOP_BYTES)


def decode_task(
    message: Message, accept: frozenset[str], tz: dt.tzinfo = UTC, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> TaskMessage:
    """Decode a task message of protocol 2 (or 1, or hybrid). Never blocks, but a compressed or large body
    takes time: see `decode_off_loop`.

    ``accept`` is the set of accepted MIME types (see `serializers.normalize_accept`); ``tz`` is the zone of
    naive ``eta``/``expires`` values (the worker's ``timezone`` setting); ``max_bytes`` caps the body, raw
    and decompressed (``worker_max_message_bytes``): a compressed body is decompressed incrementally, and
    only once its content type is known to be accepted, so a decompression bomb costs at most the cap.

    Raises:
        ContentDisallowed: the content type is not in ``accept``.
        DecodeError: anything else wrong with the message (including a body over ``max_bytes``); ``reason``
            says what.
    """
    headers = message.headers
    # Only names this codec knows (nearly every message): string keys, no compression, no extra headers.
    known = type(headers) is dict and headers.keys() <= KNOWN
    if not known and (not isinstance(headers, Mapping) or not all(map(isinstance, headers, repeat(str)))):
        raise DecodeError("headers must be a mapping with string keys")
    if type(message.properties) is not dict and not isinstance(message.properties, Mapping):
        raise DecodeError("properties must be a mapping")
    body_bytes = message.body
    if type(body_bytes) is not bytes:
        if not isinstance(body_bytes, bytes | bytearray | memoryview):
            raise DecodeError(f"body must be bytes, got {type(body_bytes).__name__}")
        body_bytes = bytes(body_bytes)
    if len(body_bytes) > max_bytes:
        raise DecodeError(f"body of {len(body_bytes)} bytes is over {max_bytes} (worker_max_message_bytes)")
    compression = None if known else headers.get("compression")
    if compression is not None:
        check_accepted(message.content_type, accept)  # never decompress what would be refused anyway
        body_bytes = decompress(body_bytes, compression, max_bytes)
    body = loads(body_bytes, message.content_type, message.content_encoding, accept)

    if "task" in headers:
        if isinstance(body, dict):
            return _from_hybrid(body, message, tz)
        if not isinstance(body, list | tuple) or len(body) != 3:
            raise DecodeError("protocol 2 body must be [args, kwargs, embed]")
        args, kwargs, embed = body
        return build_task(headers, check_args(args), check_kwargs(kwargs), check_embed(embed), message, tz)
    if isinstance(body, dict) and "task" in body:
        return _from_protocol1(body, message, tz)
    raise DecodeError("not a task message: no 'task' header and the body is not a protocol 1 task")


__all__ = [
    "KNOWN_HEADERS",
    "compression_type",
    "decode_off_loop",
    "decode_task",
    "encode_body",
    "encode_task",
    "full_embed",
    "parse_datetime",
    "safe_repr",
]
