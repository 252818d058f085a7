"""Bulk sending (`App.send_tasks`): many task messages built first, then published together.

Each message is what ``apply_async`` would send for that signature, made by the same code (`Sender.shaped`, else
`Sender.build` and `Sender.encode`; `Sender._route`); what differs is the publishing: the queues are declared once,
every message is handed to the transport in one `Transport.publish_many`, and the call returns once the broker
holds them all (Redis: a few pipelined round trips per thousand messages instead of one per message). A send
that needs a step per message the bulk path does not take (publish signals with receivers, tracing, task-sent
events, ``rpc://`` reply queues) goes through the one-by-one path instead, concurrently, with the same result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

from celeriac.app.options import SendOptions
from celeriac.app.result import AsyncResult
from celeriac.app.sending import add_to_parent
from celeriac.canvas import Signature
from celeriac.canvas.options import send_options
from celeriac.protocol.message import Message

if TYPE_CHECKING:
    from celeriac.app.sending import Sender


def _calls(signatures: Iterable[Any], common: Mapping[str, Any]) -> list[tuple[str, Any, Any, SendOptions]]:
    calls: list[tuple[str, Any, Any, SendOptions]] = []
    for sig in signatures:
        if not isinstance(sig, Signature) or sig.subtask_type is not None:
            kind = getattr(sig, "subtask_type", None) or type(sig).__name__
            raise TypeError(f"send_tasks takes task signatures (task.s(...), signature(name, ...)), not a {kind}")
        args, kwargs, own = sig._merge(None, None, None)
        options = {**common, **own}  # a signature's own options win over the call's common ones
        calls.append((sig.name, args, kwargs, cast(SendOptions, send_options(options))))
    return calls


async def send_many(sender: Sender, signatures: Iterable[Any], common: Mapping[str, Any]) -> list[AsyncResult[Any]]:
    """Send every signature of ``signatures`` (``common`` options under each one's own); see `App.asend_tasks`."""
    app = sender.app
    app.finalize()
    if app.always_eager:  # task_always_eager: each runs here, as its apply_async would
        return [await sig.clone(**{**common, **sig.options}).aapply_async() for sig in signatures]
    calls = _calls(signatures, common)
    if sender.has_per_message_steps():
        sends = (sender.send(name, args, kwargs, app.tasks.get(name), options) for name, args, kwargs, options in calls)
        return list(await asyncio.gather(*sends))
    items: list[tuple[Message, str, str, float | None]] = []
    ids: list[str] = []
    bindings: set[tuple[str, str, str]] = set()
    queues: set[str] = set()
    expect: list[str] = []
    subscribes = sender._subscribes_on_send()
    # A route depends on the name and the routing options only (the settings are frozen): worked out once per
    # kind in this call, not per message.
    routes: dict[tuple[Any, ...], tuple[str, str | None, str, bool]] = {}
    for name, args, kwargs, options in calls:
        task = app.tasks.get(name)
        wire = sender.shaped(name, args, kwargs, task, options)
        eta = None  # a shaped send has none
        if wire is None:
            message = sender.build(name, args, kwargs, task, options)
            wire = sender.encode(message, task, options)
            eta = message.eta.timestamp() if message.eta else None
        where = (name, options.get("queue"), options.get("exchange"), options.get("routing_key"))
        route = routes.get(where)
        if route is None:
            route = routes[where] = sender._route(name, task, options)
        queue, exchange, routing_key, bound = route
        queues.add(queue)
        if bound:
            bindings.add((queue, exchange or "", routing_key))
        task_id: str = wire.headers["id"]
        if subscribes and not wire.headers["ignore_result"]:
            expect.append(task_id)
        items.append((wire, routing_key, exchange or "", eta))
        ids.append(task_id)
    producer = await app.aproducer()
    for queue in sorted(queues):
        await producer.declare(queue)
    for queue, exchange, routing_key in sorted(bindings):
        await producer.bind(queue, exchange, routing_key)
    if expect:
        await asyncio.gather(*(sender._expect_result(task_id) for task_id in expect))
    await producer.transport.publish_many(items)
    add_to_parent(*ids)  # add_to_parent=False is refused by send_options: every bulk-sent task is a child
    return [AsyncResult(task_id, app=app) for task_id in ids]
