"""A stored row's columns -> `Message`: how the broker's deliveries and broadcasts are read back."""

from __future__ import annotations

from typing import Any

from celeriac.errors import DecodeError
from celeriac.protocol.message import Message
from celeriac.protocol.serializers import json_loads


def row_message(body: bytes, content_type: str, content_encoding: str, headers: str, properties: str) -> Message:
    """The message a row holds. Raises DecodeError if headers or properties are not a JSON object."""
    return Message(
        body=body,
        content_type=content_type,
        content_encoding=content_encoding,
        headers=_json_object("headers", headers),
        properties=_json_object("properties", properties),
    )


def _json_object(name: str, text: str) -> dict[str, Any]:
    value = json_loads(text)
    if not isinstance(value, dict):
        raise DecodeError(f"{name} is not a JSON object: {type(value).__name__}")
    return value
