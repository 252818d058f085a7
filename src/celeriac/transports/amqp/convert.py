"""`Message` <-> AMQP basic properties and body, as kombu puts a Celery message on RabbitMQ; no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pamqp.commands import Basic

from celeriac.errors import TransportError
from celeriac.protocol.message import Message

# The AMQP basic properties a Message may carry in ``properties`` (besides content type/encoding and headers).
PROPERTIES = frozenset(
    {"correlation_id", "reply_to", "delivery_mode", "priority", "expiration", "message_id", "timestamp", "type",
     "user_id", "app_id"}
)  # fmt: skip
# Transport bookkeeping another broker's envelope may have left in ``properties``: not AMQP properties.
_ENVELOPE = frozenset({"delivery_info", "delivery_tag", "body_encoding"})


def to_properties(message: Message, delivery_mode: int | None = None) -> Basic.Properties:
    """The AMQP properties of ``message``; ``delivery_mode`` overrides the message's (events: 1).

    Raises:
        TransportError: a property AMQP has no field for, or a header AMQP cannot encode (one line naming it).
    """
    given = {k: v for k, v in message.properties.items() if k not in _ENVELOPE and v is not None}
    unknown = sorted(set(given) - PROPERTIES)
    if unknown:
        raise TransportError(
            f"message property {unknown[0]!r} has no AMQP field (known: {', '.join(sorted(PROPERTIES))})"
        )
    if "expiration" in given:
        given["expiration"] = str(given["expiration"])
    if delivery_mode is not None:
        given["delivery_mode"] = delivery_mode
    if "type" in given:
        given["message_type"] = given.pop("type")
    return Basic.Properties(
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        headers=_table(message.headers),
        **given,
    )


def _table(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Headers as an AMQP field table: tuples become lists (the table has arrays, not tuples). Only containers
    are looked into: most values are plain strings and numbers."""
    table = dict(headers)
    for key, value in table.items():
        if isinstance(value, tuple | list | Mapping):
            table[key] = _field(value)
    return table


def _field(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_field(item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): _field(v) for k, v in value.items()}
    return value


def from_delivery(body: bytes, properties: Basic.Properties) -> Message:
    """The `Message` a delivery carries."""
    props: dict[str, Any] = {}
    for name in PROPERTIES:
        value = getattr(properties, "message_type" if name == "type" else name, None)
        if value is not None:
            props[name] = value
    return Message(
        body=body,
        content_type=properties.content_type or "",
        content_encoding=properties.content_encoding or "",
        headers=properties.headers or {},
        properties=props,
    )
