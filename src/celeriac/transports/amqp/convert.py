"""`Message` <-> AMQP basic properties and body, as kombu puts a Celery message on RabbitMQ; no I/O."""

from __future__ import annotations

from typing import Any

from celeriac._amqp.wire.codec import Properties
from celeriac.errors import TransportError
from celeriac.protocol.message import Message

# The AMQP basic properties a Message may carry in ``properties`` (besides content type/encoding and headers).
PROPERTIES = frozenset(
    {"correlation_id", "reply_to", "delivery_mode", "priority", "expiration", "message_id", "timestamp", "type",
     "user_id", "app_id"}
)  # fmt: skip
# Transport bookkeeping another broker's envelope may have left in ``properties``: not AMQP properties.
_ENVELOPE = frozenset({"delivery_info", "delivery_tag", "body_encoding"})


def to_properties(message: Message, delivery_mode: int | None = None) -> Properties:
    """The AMQP properties of ``message``; ``delivery_mode`` overrides the message's (events: 1).

    Raises:
        TransportError: a property AMQP has no field for (one line naming it). A header AMQP cannot encode is
            refused when the message is written (`celeriac._amqp.wire.encode`).
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
    return Properties(
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        headers=dict(message.headers),
        **given,
    )


def from_delivery(body: bytes, properties: Properties) -> Message:
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
