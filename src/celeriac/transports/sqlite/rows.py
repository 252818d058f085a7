"""A stored row's columns -> `Message`: how the broker's deliveries and broadcasts are read back."""

from __future__ import annotations

from celeriac.protocol.message import Message
from celeriac.protocol.serializers import json_loads


def row_message(body: bytes, content_type: str, content_encoding: str, headers: str, properties: str) -> Message:
    return Message(
        body=body,
        content_type=content_type,
        content_encoding=content_encoding,
        headers=json_loads(headers),
        properties=json_loads(properties),
    )
