"""Sending: build a task message from a call and its options and publish it; the one place send options enter.

`Sender.send` is the whole send path of ``delay``/``apply_async``/``send_task``: the app's settings, the
task's own defaults and the call's `SendOptions` meet in `Sender.build` (and canvas options will too), then the
message is encoded, routed, and published on the loop's producer. A result backend that subscribes ahead
(`celeriac.backends.prefetch`) is told about the task first; one that replies by message
(`celeriac.backends.replies`, ``rpc://``) declares its reply queue and names it in ``reply_to``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from celeriac import _otel, signals
from celeriac.app.current import parent_ids, request_var
from celeriac.app.options import SendOptions, check_send_options
from celeriac.app.result import AsyncResult
from celeriac.app.sent_event import SentEvents
from celeriac.app.shapes import SendShapes
from celeriac.backends import backend_class
from celeriac.backends.prefetch import SubscribesAhead
from celeriac.backends.replies import RepliesByMessage
from celeriac.errors import CeleriacError, ConfigurationError
from celeriac.protocol.codec import encode_task
from celeriac.protocol.ids import new_id
from celeriac.protocol.message import Embed, Message, TaskMessage
from celeriac.queues import Queue, queue_table

if TYPE_CHECKING:
    from celeriac.app.app import App
    from celeriac.app.context import RequestContext
    from celeriac.app.task import Task

log = logging.getLogger("celeriac.app")


class Sender:
    """The send path of ``app``: message building, routing, encoding, publishing."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._subscribe_on_send: bool | None = None  # decided once the settings are frozen
        self._replies: bool | None = None  # whether the backend replies by message (likewise)
        self._sent = SentEvents()
        self._queues_of: object = None  # the task_queues value `_queues` was read from
        self._queues: dict[str, Queue] = {}
        self._shapes = SendShapes(self)

    async def send(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: Mapping[str, Any] | None,
        task: Task[Any, Any] | None,
        options: SendOptions,
    ) -> AsyncResult[Any]:
        """Publish the task ``name``; returns once the broker has it (see `App.asend_task`)."""
        app = self.app
        app.finalize()
        task = task or app.tasks.get(name)
        conf = app.conf
        if not self.has_per_message_steps():
            wire = self.shaped(name, args, kwargs, task, options)
            if wire is not None:
                return await self._publish_shaped(app, name, task, options, wire)
        message = self.build(name, args, kwargs, task, options)
        span = None
        if conf.tracing_enabled:  # a PRODUCER span, its context in the headers (the running task's as parent)
            parent = getattr(request_var().get(), "otel_span", None)
            headers = cast(dict[str, Any], message.extra_headers)  # build() makes it a dict of its own
            span = _otel.send_span(name, message.id, parent, headers)
        try:
            return await self._publish(app, name, task, options, message)
        finally:
            if span is not None:
                span.end()

    async def _publish(
        self, app: App, name: str, task: Task[Any, Any] | None, options: SendOptions, message: TaskMessage
    ) -> AsyncResult[Any]:
        conf = app.conf
        queue, exchange, routing_key, named = self._route(name, task, options)
        if signals.before_task_publish.has_receivers():
            await announce(message, exchange or "", routing_key)
        if self._replies_by_message():
            backend = cast(RepliesByMessage, await app.abackend())
            reply_to = await backend.reply_to(None if message.ignore_result else message.id)
            message = dataclasses.replace(message, reply_to=reply_to)
        wire = self.encode(message, task, options)
        producer = await app.aproducer()
        if not message.ignore_result and self._subscribes_on_send():
            await self._expect_result(message.id)
        not_before = message.eta.timestamp() if message.eta else None
        if named:
            await producer.bind(queue, exchange or "", routing_key)
        await producer.publish(wire, queue, routing_key, exchange or "", not_before=not_before)
        if signals.after_task_publish.has_receivers():
            body = (list(message.args), dict(message.kwargs), dict(message.embed))
            await signals.after_task_publish.asend(name, body=body, exchange=exchange or "", routing_key=routing_key)
        if conf.task_send_sent_event:
            await self._sent.publish(producer.transport, app.origin, message, queue, exchange or "", routing_key)
        if options.get("add_to_parent", True):
            add_to_parent(message.id)
        return AsyncResult(message.id, app=app)

    async def _publish_shaped(
        self, app: App, name: str, task: Task[Any, Any] | None, options: SendOptions, wire: Message
    ) -> AsyncResult[Any]:
        """`_publish` for a message `shaped` made: no eta, and no step of its own around the publish."""
        task_id: str = wire.headers["id"]
        queue, exchange, routing_key, named = self._route(name, task, options)
        producer = await app.aproducer()
        if not wire.headers["ignore_result"] and self._subscribes_on_send():
            await self._expect_result(task_id)
        if named:
            await producer.bind(queue, exchange or "", routing_key)
        await producer.publish(wire, queue, routing_key, exchange or "")
        if options.get("add_to_parent", True):
            add_to_parent(task_id)
        return AsyncResult(task_id, app=app)

    def shaped(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: Mapping[str, Any] | None,
        task: Task[Any, Any] | None,
        options: SendOptions,
    ) -> Message | None:
        """The encoded message of a send, from the shape of its kind: what ``encode(build(...))`` makes, for a
        third of the work; None when it has options no shape holds (see `SendShapes.message`)."""
        return self._shapes.message(name, args, kwargs, task, options)

    def serialization(self, task: Task[Any, Any] | None, options: SendOptions) -> tuple[str, str | None]:
        """``(serializer, compression)`` of a send: ``options`` over ``task``'s over ``app.conf``."""
        conf = self.app.conf
        serializer = options.get("serializer") or (task.serializer if task else None) or conf.task_serializer
        return serializer, options.get("compression") or conf.task_compression

    def encode(self, message: TaskMessage, task: Task[Any, Any] | None, options: SendOptions) -> Message:
        """``message`` as the broker carries it, in the serializer and compression of ``options`` over ``task``'s
        over ``app.conf``."""
        return encode_task(message, *self.serialization(task, options))

    def _route(self, name: str, task: Task[Any, Any] | None, options: SendOptions) -> tuple[str, str | None, str, bool]:
        """``(queue, exchange, routing_key, bound)`` of a send; ``bound``: the queue must be bound to the
        exchange for that key first (task_queues, or Celery's default-queue topology)."""
        app = self.app
        conf = app.conf
        queue = options.get("queue") or app.router.queue_for(name, task.queue if task else None)
        exchange, routing_key = options.get("exchange"), options.get("routing_key")
        named = exchange is None and routing_key is None
        spec = self._declared(queue) if named else None
        if spec is not None and spec.bound:
            exchange, routing_key = spec.exchange_name, spec.key  # task_queues: through its exchange
        elif (
            named and queue == conf.task_default_queue and (conf.task_default_exchange or conf.task_default_routing_key)
        ):
            # Celery's default-queue topology: the default queue bound to task_default_exchange with
            # task_default_routing_key (each defaulting to the queue's name); sent through that binding.
            exchange = conf.task_default_exchange or queue
            routing_key = conf.task_default_routing_key or queue
        else:
            named = False
        routing_key = routing_key or queue
        return queue, exchange, routing_key, named

    def _declared(self, queue: str) -> Queue | None:
        """The ``task_queues`` declaration of ``queue`` (read again only when the setting object changes)."""
        queues = self.app.conf.task_queues
        if not queues:
            return None
        if self._queues_of is not queues:
            self._queues_of, self._queues = queues, queue_table(queues)
        return self._queues.get(queue)

    def has_per_message_steps(self) -> bool:
        """Whether a send needs steps of its own around the publish, on the loop (publish signals with receivers,
        tracing, task-sent events, ``rpc://`` reply queues): the bulk and direct paths leave such sends to `send`."""
        conf = self.app.conf
        return bool(
            conf.tracing_enabled
            or conf.task_send_sent_event
            or signals.before_task_publish.has_receivers()
            or signals.after_task_publish.has_receivers()
            or self._replies_by_message()
        )

    def _subscribes_on_send(self) -> bool:
        """Whether sends tell the result backend first: ``result_subscribe_on_send``, and a backend that
        subscribes ahead (a backend without that capability is not even opened for it)."""
        if self._subscribe_on_send is None:
            conf = self.app.conf
            url = self.app.backend_url
            try:
                ahead = url is not None and issubclass(backend_class(url), SubscribesAhead)
            except ConfigurationError:
                ahead = False  # get() reports the bad URL, as before
            self._subscribe_on_send = ahead and conf.result_subscribe_on_send and conf.result_subscribe_max_unread > 0
        return self._subscribe_on_send

    def _replies_by_message(self) -> bool:
        """Whether the result backend sends results to the sender's own queue (``rpc://``): then every send
        declares that queue first and names it in ``reply_to``, which a send cannot do without."""
        if self._replies is None:
            url = self.app.backend_url
            try:
                self._replies = url is not None and issubclass(backend_class(url), RepliesByMessage)
            except ConfigurationError:
                self._replies = False  # get() reports the bad URL, as before
        return self._replies

    async def _expect_result(self, task_id: str) -> None:
        """Let this loop's result backend get ready for the result of ``task_id`` (Redis: SUBSCRIBE now).

        Only an optimisation of the later ``get()``: a backend that cannot be reached or configured now does
        not stop the send; ``get()`` reports the problem.
        """
        try:
            backend = await self.app.abackend()
            # issubclass on the type, not isinstance: the ABC cache answers it in 0.15 us, where a runtime
            # protocol's isinstance check costs 3.5 us per send (timeit on the 2-core benchmark VM).
            if issubclass(type(backend), SubscribesAhead):
                await cast(SubscribesAhead, backend).expect(task_id)
        except CeleriacError as exc:
            log.debug("result backend not told about task %s before sending it: %s", task_id, exc)

    def build(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: Mapping[str, Any] | None,
        task: Task[Any, Any] | None,
        options: SendOptions,
    ) -> TaskMessage:
        """The protocol-2 message for a call of ``name``: ``options`` over ``task``'s defaults over ``app.conf``.

        The settings are read on each call: a typed setting costs ~0.1 us to read (the ``SendDefaults`` snapshot
        that saved ~0.9 us per read of the old ``Settings.__getattr__`` no longer paid for itself).
        """
        conf = self.app.conf
        check_send_options(options)
        if not isinstance(args, tuple | list):
            raise TypeError(f"task args must be a list or tuple, not {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"task kwargs must be a mapping, not {type(kwargs).__name__}")
        now = dt.datetime.now(dt.UTC) if options else None  # read only for a countdown or expiry in seconds
        task_id = options.get("task_id") or new_id()
        eta = options.get("eta")
        if eta is None and options.get("countdown") is not None:
            assert now is not None
            eta = now + dt.timedelta(seconds=float(options["countdown"]))
        if eta is not None and eta.tzinfo is None:
            eta = eta.replace(tzinfo=dt.UTC)
        expires_opt = options.get("expires")
        expires: dt.datetime | None
        if isinstance(expires_opt, dt.datetime):
            expires = expires_opt if expires_opt.tzinfo else expires_opt.replace(tzinfo=dt.UTC)
        elif expires_opt is not None:
            assert now is not None
            expires = now + dt.timedelta(seconds=float(expires_opt))
        else:
            expires = None
        ignore = options.get("ignore_result")
        if ignore is None:
            ignore = bool(task.ignore_result) if task and task.ignore_result is not None else conf.task_ignore_result
        time_limit = options.get("time_limit", task.time_limit if task else None)
        soft_limit = options.get("soft_time_limit", task.soft_time_limit if task else None)
        priority = options.get("priority", task.priority if task else None)
        if priority is None:
            priority = conf.task_default_priority
        if priority is not None and (
            isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 255
        ):
            raise ValueError(f"priority must be an integer from 0 to 255, not {priority!r}")
        root_id, parent_id = parent_ids()
        return TaskMessage(
            id=task_id,
            task=name,
            args=tuple(args),
            kwargs=dict(kwargs or {}),
            embed=_embed(options),
            group=options.get("group_id"),
            group_index=options.get("group_index"),
            shadow=options.get("shadow"),
            eta=eta,
            expires=expires,
            retries=int(options.get("retries", 0)),
            timelimit=(time_limit, soft_limit),
            root_id=options.get("root_id") or root_id or task_id,
            parent_id=options.get("parent_id") or parent_id,
            origin=self.app.origin,
            ignore_result=ignore,
            extra_headers=dict(options.get("headers") or {}),
            correlation_id=task_id,
            reply_to="",
            priority=priority,
            delivery_mode=conf.task_default_delivery_mode,
        )


def add_to_parent(*task_ids: str) -> None:
    """Record ``task_ids`` as children of the task running in this context, if any (its stored result lists them).

    The worker's request takes children (``add_child``); outside a task, or under an eager run, nothing does.
    The sync facades carry the caller's context to the portal loop, so a threads-pool body counts too.
    """
    source = request_var().get()
    add = getattr(source, "add_child", None)
    if add is not None:
        for task_id in task_ids:
            add(task_id)


def _signatures(value: Any) -> list[dict[str, Any]] | None:
    """``link``/``link_error`` as the embed carries them: a list of signature dicts, or null."""
    if value is None:
        return None
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if not isinstance(item, Mapping) or "task" not in item:
            raise TypeError(f"link/link_error takes signatures (task.s(...)), not {type(item).__name__}")
    return [dict(item) for item in items] or None


def _embed(options: SendOptions) -> Embed:
    """The body's third element: callbacks, errbacks, the chain's rest (reversed), the chord body."""
    chain, chord = options.get("chain"), options.get("chord")
    return Embed(
        callbacks=_signatures(options.get("link")),
        errbacks=_signatures(options.get("link_error")),
        chain=[dict(step) for step in chain] if chain else None,
        chord=dict(chord) if chord is not None else None,
    )


async def announce(message: TaskMessage, exchange: str, routing_key: str) -> None:
    """Send ``before_task_publish`` as Celery does (``headers`` are the message's protocol-2 headers); headers a
    receiver adds or changes (other than the protocol's own) travel with the message."""
    headers: dict[str, Any] = {
        "lang": "py",
        "task": message.task,
        "id": message.id,
        "root_id": message.root_id,
        "parent_id": message.parent_id,
        "retries": message.retries,
        "eta": message.eta.isoformat() if message.eta else None,
        "expires": message.expires.isoformat() if message.expires else None,
        "origin": message.origin,
        **message.extra_headers,
    }
    protocol = frozenset(headers) - frozenset(message.extra_headers)
    body = (list(message.args), dict(message.kwargs), dict(message.embed))
    properties = {"correlation_id": message.correlation_id, "reply_to": message.reply_to, "priority": message.priority}
    await signals.before_task_publish.asend(
        message.task, body=body, exchange=exchange, routing_key=routing_key, headers=headers,
        properties=properties, declare=[], retry_policy=None,
    )  # fmt: skip
    added = {key: value for key, value in headers.items() if key not in protocol}
    if added != message.extra_headers and isinstance(message.extra_headers, dict):  # build() makes it a dict
        message.extra_headers.update(added)


def retry_options(request: RequestContext, when: float | dt.datetime) -> SendOptions:
    """The send options of the message that runs ``request`` again after ``when`` (seconds or a datetime).

    The same task id, one more retry, the same root, this run as the parent when it has none, the same queue,
    headers, priority, limits and expiry (as the worker's tracer re-sends a retried message).
    """
    options = SendOptions(
        task_id=request.id or "",
        retries=request.retries + 1,
        headers=dict(request.headers),
        ignore_result=request.ignore_result,
    )
    if isinstance(when, dt.datetime):
        options["eta"] = when
    else:
        options["countdown"] = float(when)
    if request.id:
        options["parent_id"] = request.parent_id or request.id
    if request.root_id:
        options["root_id"] = request.root_id
    if request.delivery_info.get("routing_key"):
        options["queue"] = request.delivery_info["routing_key"]
    if request.priority is not None:
        options["priority"] = request.priority
    if request.expires:
        options["expires"] = dt.datetime.fromisoformat(request.expires)
    hard, soft = request.timelimit
    if hard is not None:
        options["time_limit"] = hard
    if soft is not None:
        options["soft_time_limit"] = soft
    return options
