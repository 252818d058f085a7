"""The two shapes a task takes: raw on the wire (`Message`) and understood (`TaskMessage`); no I/O.

A `Message` is what every transport moves: serialized body bytes plus headers and properties, exactly the parts
kombu puts in an AMQP message or a Redis envelope. A `TaskMessage` is the Celery protocol-2 task those bytes
carry, with its headers as typed fields (celery-wire.md §1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from celeriac.protocol.shape import TaskShape

JSON = "application/json"


class Embed(TypedDict, total=False):
    """The third element of a protocol-2 body: what happens after the task (callbacks, chain, chord)."""

    callbacks: list[dict[str, Any]] | None
    errbacks: list[dict[str, Any]] | None
    chain: list[dict[str, Any]] | None
    chord: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Message:
    """One broker message: serialized body, content type and encoding, application headers, properties.

    ``properties`` holds the AMQP basic properties other than the content type/encoding and headers:
    ``correlation_id``, ``reply_to``, ``delivery_mode``, ``priority``, ``expiration``.

    ``shape`` is set only on a message `TaskShape.message` made: the shape its headers and properties follow,
    which lets a transport reuse what it wrote for the shape's earlier messages (the Redis envelope). It is not
    an argument, so a copy made with ``dataclasses.replace`` has none and is encoded in full. Like every
    `Message`, one is a value: its headers and properties are never changed in place.
    """

    body: bytes
    content_type: str = JSON
    content_encoding: str = "utf-8"
    headers: Mapping[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)
    shape: TaskShape | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def priority(self) -> int:
        """The message priority (0 when unset)."""
        value = self.properties.get("priority")
        return int(value) if isinstance(value, int | float) else 0


@dataclass(slots=True)
class TaskMessage:
    """A Celery protocol-2 task: the headers of celery-wire.md §1.1 as fields, and the decoded body.

    ``eta`` and ``expires`` are timezone-aware datetimes (naive wire values are read as UTC unless the codec
    was given another zone). ``extra_headers`` keeps any header this class has no field for, so a message that
    is re-sent (retry) carries them along unchanged.

    Treat it as a value: change a copy (``dataclasses.replace``), never the instance. It is not a frozen dataclass
    only because a frozen one's ``__init__`` sets each of the 28 fields through ``object.__setattr__``: 5.3 us
    against 1.5 us per message built, on every send (bench/README.md, "Producer").
    """

    id: str
    task: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    embed: Embed = field(default_factory=lambda: Embed(callbacks=None, errbacks=None, chain=None, chord=None))
    lang: str = "py"
    shadow: str | None = None
    eta: dt.datetime | None = None
    expires: dt.datetime | None = None
    group: str | None = None
    group_index: int | None = None
    retries: int = 0
    timelimit: tuple[float | None, float | None] = (None, None)
    root_id: str | None = None
    parent_id: str | None = None
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    origin: str | None = None
    ignore_result: bool | None = None
    replaced_task_nesting: int = 0
    stamped_headers: list[str] | None = None
    stamps: Mapping[str, Any] = field(default_factory=dict)
    extra_headers: Mapping[str, Any] = field(default_factory=dict)
    # properties
    correlation_id: str | None = None
    reply_to: str | None = None
    priority: int | None = None
    delivery_mode: int = 2

    @property
    def name(self) -> str:
        """The name shown in logs and events: ``shadow`` when set, else ``task``."""
        return self.shadow or self.task
