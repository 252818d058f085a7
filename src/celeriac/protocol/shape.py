"""Task message shapes: what every message of one kind of send shares, encoded once; no I/O.

Two ``delay()`` calls of one task from one place differ in a handful of values: the task id (and the
``root_id`` and ``correlation_id`` that follow it), the parent's ids, the arguments and their reprs. The other
twenty-odd headers and properties, the embed and the serializer are the same, yet `encode_task` builds them
again for every message and the Redis envelope serializes them again (building, encoding and the envelope were
~18 us of a ~40 us gathered send on the 2-core benchmark VM; bench/README.md, "Shaped sends").

A `TaskShape` is made once from a template `TaskMessage` by `encode_task` itself, so its messages carry exactly
the headers and properties `encode_task` writes for a message with those values, in the same order.
`TaskShape.message` fills in the values that vary and marks the `Message` with its shape; a transport may then
reuse what it wrote for the shape before (`TaskShape.renderings`, see `celeriac.transports.redis.envelope`).

What may not vary inside a shape (an ``eta``, ``expires``, a group, extra headers, callbacks) is simply part of
it: the sender keys its shapes by everything that goes into them (`celeriac.app.sending.Sender`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from celeriac.protocol.codec import encode_task, full_embed, safe_repr
from celeriac.protocol.compressors import compress
from celeriac.protocol.message import Message, TaskMessage
from celeriac.protocol.serializers import dumps

VARYING_HEADERS = ("id", "root_id", "parent_id", "argsrepr", "kwargsrepr")
"""The headers a shape's messages fill in, each a string or null; with them the ``correlation_id`` property."""


class TaskShape:
    """The headers, properties, embed and serializer the messages of one kind of send share.

    Args:
        template: a message of that kind; its id, parent ids and arguments are not kept. It may not have an
            ``expires`` (the ``expiration`` property it makes is counted from each send's own time).
        serializer: the body's serializer name.
        compression: the body's compression, or None.

    Raises:
        ValueError: the template has an ``expires``.
        ConfigurationError: unknown serializer or compression (as `encode_task` raises it).
    """

    __slots__ = ("_compression", "_embed", "_headers", "_mutable", "_properties", "_serializer", "renderings")

    def __init__(self, template: TaskMessage, serializer: str, compression: str | None) -> None:
        if template.expires is not None:
            raise ValueError("a task shape cannot have an expiry: its expiration is counted from each send")
        probe = encode_task(template, serializer, compression)
        self._headers = dict(probe.headers)
        self._properties = dict(probe.properties)
        # Header values that are lists or dicts (timelimit, stamps, ...): each message gets its own copies, so
        # one message's headers never share a mutable value with another's.
        self._mutable = tuple(key for key, value in self._headers.items() if isinstance(value, list | dict))
        self._embed = full_embed(template.embed)
        self._serializer = serializer
        self._compression = compression
        self.renderings: dict[Hashable, Any] = {}
        """What transports wrote for this shape before, under keys of their own (e.g. a Redis envelope's
        stencil per exchange and routing key). Only ever added to; an entry stays valid for the shape."""

    def message(
        self,
        task_id: str,
        root_id: str | None,
        parent_id: str | None,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> Message:
        """The message of this shape with these values: what `encode_task` makes of the template with them.

        Raises:
            TypeError: the arguments cannot be serialized.
        """
        content_type, content_encoding, body = dumps([list(args), dict(kwargs), self._embed], self._serializer)
        if self._compression is not None:
            body = compress(body, self._compression)[1]
        headers = self._headers.copy()  # the key order stays the template's, which is encode_task's
        headers["id"] = task_id
        headers["root_id"] = root_id or task_id
        headers["parent_id"] = parent_id
        headers["argsrepr"] = "()" if not args else safe_repr(tuple(args))
        headers["kwargsrepr"] = "{}" if not kwargs else safe_repr(dict(kwargs))
        for key in self._mutable:
            headers[key] = headers[key].copy()
        properties = self._properties.copy()
        properties["correlation_id"] = task_id
        message = Message(body, content_type, content_encoding, headers, properties)
        object.__setattr__(message, "shape", self)  # not an __init__ argument: see Message
        return message


__all__ = ["VARYING_HEADERS", "TaskShape"]
