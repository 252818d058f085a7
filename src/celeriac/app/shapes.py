"""The shapes of one app's sends: an encoded message per send for a third of the work of building it.

`Sender.build` reads the call, its options, the task's defaults, the app's settings and the running task, and
`encode_task` turns the result into headers and a body; the Redis envelope then serializes it all. Most of that is
the same for every ``delay()`` of one task from one place. `SendShapes` keeps a `TaskShape` per kind of send and
makes each message from it (`celeriac.protocol.shape`): the same message, ~3 us instead of ~9 to build and encode
it, and ~3 us (plus the delivery tag) instead of ~9 for its Redis envelope (timeit on the 2-core benchmark VM;
bench/README.md, "Shaped sends").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from celeriac.app.current import parent_ids
from celeriac.app.options import SendOptions
from celeriac.protocol.ids import new_id
from celeriac.protocol.message import Message
from celeriac.protocol.shape import TaskShape

if TYPE_CHECKING:
    from celeriac.app.sending import Sender
    from celeriac.app.task import Task

SHAPED_OPTIONS = frozenset(
    {"queue", "routing_key", "exchange", "priority", "ignore_result", "time_limit", "soft_time_limit",
     "serializer", "compression", "shadow", "add_to_parent"}
)  # fmt: skip
"""Send options that are the same for every message of a shape, and so may be part of its key. Any other option
(an id, an eta or expiry, headers, callbacks, a group, a parent, retries) makes a send build and encode its message
in full."""

MAX_SHAPES = 256
"""Shapes kept per app (each ~2 KiB); a sender with more kinds of sends than this starts over."""


class SendShapes:
    """The shapes of ``sender``'s sends, by kind (see `message`)."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender
        self._shapes: dict[tuple[Any, ...], TaskShape] = {}

    def message(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: Mapping[str, Any] | None,
        task: Task[Any, Any] | None,
        options: SendOptions,
    ) -> Message | None:
        """What ``sender.encode(sender.build(...))`` makes of this send, made from the shape of its kind; None
        when the send has an option no shape holds (`SHAPED_OPTIONS`): the caller then builds and encodes it. For
        sends with no step of their own around the publish (`Sender.has_per_message_steps`), since those steps
        need the `TaskMessage` this never makes.

        A shape is keyed by everything `Sender.build` and `Sender.encode` read but the id, the arguments and the
        running task: the name, the task and the attributes of it they read, the options, the app's origin. The
        settings they read are frozen before the first send. Whoever changes `build` keeps this key whole;
        tests/unit/test_shapes.py compares the two paths.

        Raises:
            TypeError, ValueError: as `Sender.build` and `Sender.encode` raise them.
        """
        if options and not options.keys() <= SHAPED_OPTIONS:
            return None
        if not isinstance(args, tuple | list) or (kwargs is not None and not isinstance(kwargs, Mapping)):
            return None  # `build` says what is wrong
        sender = self._sender
        own = () if task is None else (task.ignore_result, task.time_limit, task.soft_time_limit, task.priority,
                                        task.serializer)  # fmt: skip
        given = tuple(options.values()) if options else ()
        # The values' types are part of the key: 1, 1.0 and True are equal keys, yet JSON writes them apart (and
        # build refuses some of them: a priority of True).
        key = (
            name,
            task,
            own,
            tuple(map(type, own)),
            tuple(options),
            given,
            tuple(map(type, given)),
            sender.app.origin,
        )
        try:
            shape = self._shapes.get(key)
        except TypeError:  # an option's value is unhashable: no shape for it
            return None
        if shape is None:
            template = sender.build(name, (), None, task, options)  # checks the options, as every send does
            shape = TaskShape(template, *sender.serialization(task, options))
            if len(self._shapes) >= MAX_SHAPES:
                self._shapes.clear()
            self._shapes[key] = shape
        root_id, parent_id = parent_ids()
        return shape.message(new_id(), root_id, parent_id, args, kwargs or {})
