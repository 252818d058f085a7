"""App: settings, task registry, and the factories for broker and result-backend connections.

Connections are made lazily, one producer transport and one result backend per event loop (a sync call runs on
the portal loop, a worker's code on the worker loop), because asyncio connections belong to the loop that
opened them. The app is *finalized* on its first send or worker start: its settings freeze then.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import os
import socket
import uuid
import weakref
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, Protocol, TypeVar, Unpack, overload

from celeriac._portal import portal
from celeriac.app.current import register_default, set_current_app
from celeriac.app.options import SendOptions, TaskOptions
from celeriac.app.producer import Producer
from celeriac.app.registry import TaskRegistry
from celeriac.app.result import AsyncResult
from celeriac.app.routing import Router
from celeriac.app.task import Task
from celeriac.backends import backend_class
from celeriac.backends import from_url as backend_from_url
from celeriac.backends.base import BackendOptions, ResultBackend, TaskMeta
from celeriac.errors import CeleriacError, ConfigurationError
from celeriac.protocol import serializers
from celeriac.protocol.codec import encode_task
from celeriac.protocol.message import TaskMessage
from celeriac.settings import Settings
from celeriac.transports import from_url as transport_from_url
from celeriac.transports import redact_url
from celeriac.transports.base import Transport, TransportOptions

if TYPE_CHECKING:
    from celeriac.app.control import Control

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_BROKER = "sqlite:///celeriac.db"

log = logging.getLogger("celeriac.app")


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` returns for unbound tasks."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class BoundTaskDecorator(Protocol):
    """What ``@app.task(bind=True, ...)`` returns: the function's first parameter receives the task."""

    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def __call__(self, fn: Callable[Concatenate[Any, P], R], /) -> Task[P, R]: ...


@dataclass(frozen=True, slots=True)
class SendDefaults:
    """The settings every send reads, taken from ``app.conf`` in one go (see `App._defaults_for_send`)."""

    serializer: str
    compression: str | None
    ignore_result: bool
    priority: int | None
    delivery_mode: int


def anon_nodename() -> str:
    """What a non-worker process calls itself on the wire: ``gen<pid>@<hostname>``."""
    return f"gen{os.getpid()}@{socket.gethostname()}"


def _ready(
    cache: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[Any]], loop: asyncio.AbstractEventLoop
) -> Any:
    """``loop``'s connected resource in ``cache``, or None while there is none yet (or its connecting failed).

    Every send asks for its loop's transport and backend: once they are connected, this answers without the
    coroutine and the shield of `App._shared`.
    """
    future = cache.get(loop)
    if future is None or not future.done() or future.cancelled() or future.exception() is not None:
        return None
    return future.result()


class App:
    """A celeriac application: configuration, tasks, and how to reach the broker and results.

    Args:
        main: the name of the main module (used for task names defined in ``__main__``).
        broker: the broker URL (``broker_url``); default: the embedded SQLite file ``./celeriac.db``.
        backend: the result backend URL (``result_backend``); default: the broker's URL when it is SQLite
            or Redis.
        **settings: any other setting by its Celery name.
    """

    def __init__(
        self, main: str | None = None, broker: str | None = None, backend: str | None = None, **settings: Any
    ) -> None:
        self.main = main
        self.conf = Settings()
        self.conf.update(settings)
        if broker is not None:
            self.conf.broker_url = broker
        if backend is not None:
            self.conf.result_backend = backend
        self.conf.apply_environment()
        self.tasks = TaskRegistry()
        self.steps: dict[str, list[type[Any]]] = {"worker": [], "consumer": []}
        # Per event loop: a future of the connected producer transport / result backend.
        self._transports: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._backends: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._producers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Producer] = weakref.WeakKeyDictionary()
        self._router: Router | None = None
        self._control: Control | None = None
        self._subscribe_on_send: bool | None = None  # decided once the settings are frozen
        self._send_defaults: SendDefaults | None = None  # likewise
        self.origin = anon_nodename()
        register_default(self)

    def __repr__(self) -> str:
        return f"<celeriac.App {self.main or '__main__'}>"

    # -- configuration ---------------------------------------------------------------------------
    def config_from_object(self, obj: object | str) -> None:
        """Read every lower-case public attribute of ``obj`` (or the module it names) as a setting."""
        if isinstance(obj, str):
            try:
                obj = importlib.import_module(obj)
            except ImportError as exc:
                raise ConfigurationError(f"cannot import config module {obj!r}: {exc}") from None
        values = {
            key: getattr(obj, key)
            for key in dir(obj)
            if not key.startswith("_")
            and key.islower()
            and not callable(getattr(obj, key))
            and not isinstance(getattr(obj, key), type(os))
        }
        self.conf.update(values)
        self.conf.apply_environment()

    @property
    def broker_url(self) -> str:
        """The configured broker URL, or the embedded SQLite default."""
        url: str = self.conf.broker_url or DEFAULT_BROKER
        return url

    @property
    def backend_url(self) -> str | None:
        """The result backend URL: configured, else the broker's URL for SQLite and Redis brokers."""
        if self.conf.result_backend:
            return str(self.conf.result_backend)
        scheme = self.broker_url.split(":", 1)[0]
        return self.broker_url if scheme in {"sqlite", "redis", "rediss", "redis+socket"} else None

    def transport_options(self) -> TransportOptions:
        """``broker_transport_options`` as the transport layer's typed options."""
        extra = dict(self.conf.broker_transport_options)
        return TransportOptions(
            visibility_timeout=float(extra.pop("visibility_timeout", 3600.0)),
            polling_interval=float(extra.pop("polling_interval", 0.05)),
            max_deliveries=int(extra.pop("max_deliveries", self.conf.broker_max_deliveries)),
            extra=extra,
        )

    def backend_options(self) -> BackendOptions:
        """The result settings as the backend layer's typed options."""
        expires = self.conf.result_expires
        return BackendOptions(
            serializer=self.conf.result_serializer,
            accept=tuple(self.conf.result_accept_content or self.conf.accept_content),
            expires=float(expires) if expires else None,
            extra=dict(self.conf.result_backend_transport_options),
            unread_limit=self.conf.result_subscribe_max_unread,
        )

    @property
    def accept(self) -> frozenset[str]:
        """The MIME types workers of this app accept (``accept_content``)."""
        return serializers.normalize_accept(self.conf.accept_content)

    @property
    def router(self) -> Router:
        """Resolves task names to queues."""
        if self._router is None:
            self._router = Router(self.conf.task_routes, self.conf.task_default_queue)
        return self._router

    def _defaults_for_send(self) -> SendDefaults:
        """The send settings of ``app.conf``: read once when it is frozen, else read now."""
        # A setting read through app.conf costs ~0.9 us (its __getattr__); a send read five of them.
        if self._send_defaults is not None:
            return self._send_defaults
        conf = self.conf
        defaults = SendDefaults(
            serializer=conf.task_serializer,
            compression=conf.task_compression,
            ignore_result=bool(conf.task_ignore_result),
            priority=conf.task_default_priority,
            delivery_mode=conf.task_default_delivery_mode,
        )
        if conf.frozen:
            self._send_defaults = defaults
        return defaults

    def finalize(self) -> None:
        """Import the ``imports``/``include`` modules (registering their tasks) and freeze the settings."""
        if self.conf.frozen:
            return
        for module in (*self.conf.imports, *self.conf.include):
            importlib.import_module(module)
        self.conf.freeze()

    def set_current(self) -> None:
        """Make this app the current app in this context."""
        set_current_app(self)

    # -- tasks -----------------------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(self, *, bind: Literal[True], **options: Unpack[TaskOptions]) -> BoundTaskDecorator: ...
    @overload
    def task(self, *, bind: Literal[False] = False, **options: Unpack[TaskOptions]) -> TaskDecorator: ...

    def task(  # type: ignore[misc]  # mypy cannot match Unpack[...] kwargs of keyword-only overloads
        self, fn: Callable[..., Any] | None = None, /, *, bind: bool = False, **options: Unpack[TaskOptions]
    ) -> Any:
        """Register a function (``def`` or ``async def``) as a task: ``@app.task`` or ``@app.task(...)``."""

        def register(function: Callable[..., Any]) -> Task[Any, Any]:
            if function.__module__ == "__main__" and self.main and "name" not in options:
                options["name"] = f"{self.main}.{function.__qualname__}"
            task: Task[Any, Any] = Task(self, function, bind=bind, **options)
            self.tasks.register(task)
            return task

        return register(fn) if fn is not None else register

    # -- connections -----------------------------------------------------------------------------
    def make_transport(self) -> Transport:
        """A new, unconnected transport to the broker (the caller owns and closes it)."""
        return transport_from_url(self.broker_url, self.transport_options())

    def make_backend(self) -> ResultBackend:
        """A new, unconnected result backend (the caller owns and closes it)."""
        url = self.backend_url
        if url is None:
            raise ConfigurationError("no result backend is configured (set result_backend)")
        return backend_from_url(url, self.backend_options())

    async def atransport(self) -> Transport:
        """This loop's shared producer transport, connected on first use (concurrent callers share it)."""
        transport: Transport | None = _ready(self._transports, asyncio.get_running_loop())
        if transport is None:
            transport = await self._shared(self._transports, self.make_transport)
        return transport

    async def aproducer(self) -> Producer:
        """This loop's producer (on the shared transport)."""
        loop = asyncio.get_running_loop()
        transport = await self.atransport()
        producer = self._producers.get(loop)
        if producer is None or producer.transport is not transport:
            producer = Producer(transport, declare=self.conf.task_create_missing_queues)
            self._producers[loop] = producer
        return producer

    async def abackend(self) -> ResultBackend:
        """This loop's shared result backend, connected on first use (concurrent callers share it)."""
        backend: ResultBackend | None = _ready(self._backends, asyncio.get_running_loop())
        if backend is None:
            backend = await self._shared(self._backends, self.make_backend)
        return backend

    @staticmethod
    async def _shared(
        cache: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[Any]], make: Callable[[], Any]
    ) -> Any:
        loop = asyncio.get_running_loop()
        future = cache.get(loop)
        if future is None:
            future = loop.create_future()
            cache[loop] = future
            try:
                resource = make()  # may refuse its URL: concurrent and later callers must not wait forever
                await resource.connect()
            except BaseException as exc:
                del cache[loop]
                future.set_exception(exc)
                future.exception()  # mark retrieved: concurrent waiters (if any) get it too
                raise
            future.set_result(resource)
        return await asyncio.shield(future)

    def take_received_result(self, task_id: str, wait: float = 0.0) -> TaskMeta | None:
        """The ready record of ``task_id`` if the portal loop's result backend received it, else None.

        For the sync facades: runs nothing on the loop (`ResultBackend.take_received` is thread-safe), so
        ``get()`` of a task whose result came in needs no hop onto the portal loop. With ``wait`` > 0 it blocks
        this thread up to ``wait`` seconds for a record the backend expects (sent with a send-time subscription).
        """
        future = self._backends.get(portal.loop())
        if future is None or not future.done() or future.cancelled() or future.exception() is not None:
            return None
        backend: ResultBackend = future.result()
        return backend.take_received(task_id, wait)

    async def aclose(self) -> None:
        """Close this loop's shared transport and backend (they reopen on next use)."""
        loop = asyncio.get_running_loop()
        for cache in (self._transports, self._backends):
            future = cache.pop(loop, None)
            if future is not None and future.done() and not future.exception():
                await future.result().close()

    def close(self) -> None:
        """Close the connections the sync facades opened."""
        portal.run(self.aclose())

    @property
    def control(self) -> Control:
        """Remote control of this app's workers: ``app.control.inspect().ping()``, ``app.control.revoke(id)``."""
        if self._control is None:
            # The one reference upwards: Celery's API puts `control` on the app; the code lives in celeriac.control.
            from celeriac.app.control import Control

            self._control = Control(self)
        return self._control

    def redacted_broker_url(self) -> str:
        """The broker URL with its password hidden (safe to log and print)."""
        return redact_url(self.broker_url)

    # -- sending ---------------------------------------------------------------------------------
    def send_task(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SendOptions],
    ) -> AsyncResult[Any]:
        """Send a task by name (it need not be registered here); blocks until the broker has it."""
        return portal.run(self.asend_task(name, args, kwargs, **options))

    async def asend_task(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        task: Task[Any, Any] | None = None,
        **options: Unpack[SendOptions],
    ) -> AsyncResult[Any]:
        """Async twin of `send_task`; ``task`` supplies per-task defaults (queue, priority, serializer...)."""
        self.finalize()
        task = task or self.tasks.get(name)
        defaults = self._defaults_for_send()
        message = self._build_message(name, args, kwargs, task, defaults, options)
        queue = options.get("queue") or self.router.queue_for(name, task.queue if task else None)
        routing_key = options.get("routing_key") or queue
        serializer = options.get("serializer") or (task.serializer if task else None) or defaults.serializer
        wire = encode_task(message, serializer, options.get("compression") or defaults.compression)
        producer = await self.aproducer()
        if not message.ignore_result and self._subscribes_on_send():
            await self._expect_result(message.id)
        not_before = message.eta.timestamp() if message.eta else None
        await producer.publish(wire, queue, routing_key, options.get("exchange", ""), not_before=not_before)
        return AsyncResult(message.id, app=self)

    def _subscribes_on_send(self) -> bool:
        """Whether sends tell the result backend first: ``result_subscribe_on_send``, and a backend that listens
        ahead (Redis; a SQLite backend is not even opened for it)."""
        if self._subscribe_on_send is None:
            url = self.backend_url
            try:
                listens = url is not None and backend_class(url).listens_ahead
            except ConfigurationError:
                listens = False  # get() reports the bad URL, as before
            self._subscribe_on_send = bool(
                listens and self.conf.result_subscribe_on_send and self.conf.result_subscribe_max_unread > 0
            )
        return self._subscribe_on_send

    async def _expect_result(self, task_id: str) -> None:
        """Let this loop's result backend get ready for the result of ``task_id`` (Redis: SUBSCRIBE now).

        Only an optimisation of the later ``get()``: a backend that cannot be reached or configured now does
        not stop the send; ``get()`` reports the problem.
        """
        try:
            backend = await self.abackend()
            await backend.expect(task_id)
        except CeleriacError as exc:
            log.debug("result backend not told about task %s before sending it: %s", task_id, exc)

    def build_message(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        task: Task[Any, Any] | None = None,
        **options: Unpack[SendOptions],
    ) -> TaskMessage:
        """The protocol-2 task message `send_task` would publish (exposed for tests and tools)."""
        return self._build_message(name, args, kwargs, task, self._defaults_for_send(), options)

    def _build_message(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any],
        kwargs: Mapping[str, Any] | None,
        task: Task[Any, Any] | None,
        defaults: SendDefaults,
        options: SendOptions,
    ) -> TaskMessage:
        if not isinstance(args, tuple | list):
            raise TypeError(f"task args must be a list or tuple, not {type(args).__name__}")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"task kwargs must be a mapping, not {type(kwargs).__name__}")
        now = dt.datetime.now(dt.UTC)
        task_id = options.get("task_id") or str(uuid.uuid4())
        eta = options.get("eta")
        if eta is None and options.get("countdown") is not None:
            eta = now + dt.timedelta(seconds=float(options["countdown"]))
        if eta is not None and eta.tzinfo is None:
            eta = eta.replace(tzinfo=dt.UTC)
        expires_opt = options.get("expires")
        expires: dt.datetime | None
        if isinstance(expires_opt, dt.datetime):
            expires = expires_opt if expires_opt.tzinfo else expires_opt.replace(tzinfo=dt.UTC)
        elif expires_opt is not None:
            expires = now + dt.timedelta(seconds=float(expires_opt))
        else:
            expires = None
        ignore = options.get("ignore_result")
        if ignore is None:
            ignore = bool(task.ignore_result) if task and task.ignore_result is not None else defaults.ignore_result
        time_limit = options.get("time_limit", task.time_limit if task else None)
        soft_limit = options.get("soft_time_limit", task.soft_time_limit if task else None)
        priority = options.get("priority", task.priority if task else None)
        if priority is None:
            priority = defaults.priority
        return TaskMessage(
            id=task_id,
            task=name,
            args=tuple(args),
            kwargs=dict(kwargs or {}),
            shadow=options.get("shadow"),
            eta=eta,
            expires=expires,
            retries=int(options.get("retries", 0)),
            timelimit=(time_limit, soft_limit),
            root_id=options.get("root_id") or task_id,
            parent_id=options.get("parent_id"),
            origin=self.origin,
            ignore_result=ignore,
            extra_headers=dict(options.get("headers") or {}),
            correlation_id=task_id,
            reply_to="",
            priority=priority,
            delivery_mode=defaults.delivery_mode,
        )

    def AsyncResult(self, id: str) -> AsyncResult[Any]:
        """The result handle of the task ``id``."""
        return AsyncResult(id, app=self)
