"""App: settings, task registry, ``@app.task``, and the factories for broker and result-backend connections.

The per-loop connections live in `celeriac.app.resources`, the send path in `celeriac.app.sending`; the app
holds one of each and keeps Celery's API over them. The app is *finalized* on its first send or worker start:
its settings freeze then.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, Literal, ParamSpec, TypeVar, Unpack, cast, overload

from celeriac._portal import portal
from celeriac._sqlite.config import located
from celeriac.app.bulk import send_many
from celeriac.app.config import check_values, load_object, settings_from
from celeriac.app.connection_options import backend_options, transport_options
from celeriac.app.control import Control
from celeriac.app.current import register_default, set_current_app, shared_declarations
from celeriac.app.direct import DirectSends
from celeriac.app.discovery import Packages, annotate, discover
from celeriac.app.eager_canvas import apply_canvas
from celeriac.app.options import SendOptions, TaskOptions, check_task_options
from celeriac.app.producer import Producer
from celeriac.app.registry import TaskRegistry
from celeriac.app.resources import Resources
from celeriac.app.result import AsyncResult
from celeriac.app.routing import Router
from celeriac.app.sending import Sender
from celeriac.app.shared import SharedDefinition
from celeriac.app.task import BoundTaskDecorator, Task, TaskDecorator
from celeriac.backends import from_url as backend_from_url
from celeriac.backends import keeps_results
from celeriac.backends.base import BackendOptions, ResultBackend, TaskMeta
from celeriac.backends.prefetch import SubscribesAhead
from celeriac.canvas import Signature
from celeriac.canvas import signature as canvas_signature
from celeriac.control.builtin import with_builtins
from celeriac.control.commands import CommandRegistry
from celeriac.errors import ConfigurationError
from celeriac.protocol import serializers
from celeriac.protocol.message import TaskMessage
from celeriac.queues import Queue, queue_table
from celeriac.settings import Settings
from celeriac.transports import from_url as transport_from_url
from celeriac.transports import redact_url
from celeriac.transports.base import Transport, TransportOptions

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_BROKER = "sqlite:///celeriac.db"

log = logging.getLogger("celeriac.app")


def anon_nodename() -> str:
    """What a non-worker process calls itself on the wire: ``gen<pid>@<hostname>``."""
    return f"gen{os.getpid()}@{socket.gethostname()}"


class App:
    """A celeriac application: configuration, tasks, and how to reach the broker and results.

    Args:
        main: the name of the main module (used for task names defined in ``__main__``).
        broker: the broker URL (``broker_url``); default: the embedded SQLite file ``./celeriac.db``.
        backend: the result backend URL (``result_backend``); default: the broker's URL when it is SQLite
            or Redis.
        config_source: a config object or its name, read first (as `config_from_object`).
        set_as_current: False keeps this app from becoming the fallback current app (Celery's flag).
        **settings: any other setting by its Celery name.
    """

    def __init__(
        self,
        main: str | None = None,
        broker: str | None = None,
        backend: str | None = None,
        *,
        config_source: object | str | None = None,
        set_as_current: bool = True,
        **settings: Any,
    ) -> None:
        self.main = main
        self.conf = Settings()
        if config_source is not None:
            self.conf.update(settings_from(load_object(config_source)))
        self.conf.update(settings)
        if broker is not None:
            self.conf.broker_url = broker
        if backend is not None:
            self.conf.result_backend = backend
        self.conf.apply_environment()
        check_values(self.conf)
        self.tasks = TaskRegistry()
        self._discover: list[tuple[Packages, str]] = []  # autodiscover_tasks() calls to run at finalize
        self.steps: dict[str, list[type[Any]]] = {"worker": [], "consumer": []}
        self._resources = Resources(self.make_transport, self.make_backend, self._declares_queues)
        self._said_default = False  # the default-broker warning is logged once per app
        self._sender = Sender(self)
        self._direct = DirectSends(self._sender)
        self._router: Router | None = None
        self._control: Control | None = None
        self._control_commands: CommandRegistry | None = None
        self.origin = anon_nodename()
        if set_as_current:
            register_default(self)

    def __repr__(self) -> str:
        return f"<celeriac.App {self.main or '__main__'}>"

    # -- configuration ---------------------------------------------------------------------------
    def config_from_object(
        self, obj: object | str, namespace: str | None = None, *, silent: bool = False, force: bool = False
    ) -> None:
        """Read the settings of ``obj``: a module, class, dict or object, or the name of one (``"proj.config"``,
        ``"django.conf:settings"``). With ``namespace="CELERY"`` only ``CELERY_``-prefixed names are read (as
        Django projects keep them); see `celeriac.app.config.settings_from`. ``silent``: a module that cannot
        be imported is skipped. ``force`` is accepted for Celery's signature (settings are read at once).
        """
        try:
            source = load_object(obj)
        except ConfigurationError:
            if silent:
                return
            raise
        self.conf.update(settings_from(source, namespace))
        self.conf.apply_environment()
        check_values(self.conf)

    def config_from_envvar(self, variable_name: str, silent: bool = False, force: bool = False) -> None:
        """`config_from_object` of the module named by the environment variable ``variable_name``."""
        module = os.environ.get(variable_name)
        if not module:
            if silent:
                return
            raise ConfigurationError(f"environment variable {variable_name!r} is not set (it names a config module)")
        self.config_from_object(module, silent=silent, force=force)

    @property
    def broker_url(self) -> str:
        """The configured broker URL, or the embedded SQLite default."""
        url: str = self.conf.broker_url or DEFAULT_BROKER
        return url

    @property
    def backend_url(self) -> str | None:
        """The result backend URL: configured, else the broker's URL when its scheme keeps results too (SQLite,
        Redis; see `celeriac.backends.keeps_results`)."""
        if self.conf.result_backend:
            return self.conf.result_backend
        return self.broker_url if keeps_results(self.broker_url) else None

    def transport_options(self) -> TransportOptions:
        """``broker_transport_options`` as the transport layer's typed options."""
        return transport_options(self.conf, self.broker_url)

    def backend_options(self) -> BackendOptions:
        """The result settings as the backend layer's typed options."""
        return backend_options(self.conf, self.broker_url)

    def declared_queues(self) -> dict[str, Queue]:
        """``task_queues`` by name (`celeriac.queues`); empty when it is not set."""
        return queue_table(self.conf.task_queues)

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

    def finalize(self) -> None:
        """Import the ``imports``/``include`` modules (registering their tasks) and freeze the settings."""
        if self.conf.frozen:
            return
        check_values(self.conf)
        for module in (*self.conf.imports, *self.conf.include):
            importlib.import_module(module)
        while self._discover:
            discover(*self._discover.pop(0))
        for definition in shared_declarations():
            cast(SharedDefinition, definition).register(self)
        for name in self.tasks:
            annotate(self.tasks[name], self.conf.task_annotations)
        self.conf.freeze()

    def autodiscover_tasks(self, packages: Packages = None, related_name: str = "tasks", force: bool = False) -> None:
        """Import ``<package>.tasks`` of each package (a list, or a callable giving one; default: Django's
        installed apps) when the app finalizes, or now with ``force``. A package without that module is skipped."""
        if force or self.conf.frozen:
            discover(packages, related_name)
        else:
            self._discover.append((packages, related_name))

    def set_current(self) -> None:
        """Make this app the current app in this context."""
        set_current_app(self)

    # -- tasks -----------------------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self, *, bind: Literal[True], base: type[Task[Any, Any]] | None = None, **options: Unpack[TaskOptions]
    ) -> BoundTaskDecorator: ...
    @overload
    def task(
        self, *, bind: Literal[False] = False, base: type[Task[Any, Any]] | None = None, **options: Unpack[TaskOptions]
    ) -> TaskDecorator: ...

    def task(  # type: ignore[misc]  # mypy cannot match Unpack[...] kwargs of keyword-only overloads
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        bind: bool = False,
        base: type[Task[Any, Any]] | None = None,
        **options: Unpack[TaskOptions],
    ) -> Any:
        """Register a function (``def`` or ``async def``) as a task: ``@app.task`` or ``@app.task(...)``.

        ``base`` is a `Task` subclass to build it from (its class attributes are defaults, its hooks run);
        an unknown option is a one-line error naming the closest known one.
        """
        check_task_options(options)
        cls = Task if base is None else base
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise ConfigurationError(f"task option base= must be a celeriac Task subclass, not {cls!r}")

        def register(function: Callable[..., Any]) -> Task[Any, Any]:
            if function.__module__ == "__main__" and self.main and "name" not in options and not cls.name:
                options["name"] = f"{self.main}.{function.__qualname__}"
            task: Task[Any, Any] = cls(self, function, bind=bind, **options)
            if self.conf.frozen:  # registered later than finalize: annotated now
                annotate(task, self.conf.task_annotations)
            self.tasks.register(task)
            return task

        return register(fn) if fn is not None else register

    # -- connections -----------------------------------------------------------------------------
    def make_transport(self) -> Transport:
        """A new, unconnected transport to the broker (the caller owns and closes it)."""
        if not self.conf.broker_url and not self._said_default:
            # Nothing configured is a working default, but a file in the current directory must not be a surprise.
            self._said_default = True
            log.warning("no broker_url is set: using the embedded SQLite file %s", located(self.broker_url))
        return transport_from_url(self.broker_url, self.transport_options())

    def make_backend(self) -> ResultBackend:
        """A new, unconnected result backend (the caller owns and closes it)."""
        url = self.backend_url
        if url is None:
            raise ConfigurationError("no result backend is configured (set result_backend)")
        return backend_from_url(url, self.backend_options())

    def _declares_queues(self) -> bool:
        return bool(self.conf.task_create_missing_queues)

    async def atransport(self) -> Transport:
        """This loop's shared producer transport, connected on first use (concurrent callers share it)."""
        return await self._resources.transport()

    async def aproducer(self) -> Producer:
        """This loop's producer (on the shared transport)."""
        return await self._resources.producer()

    def take_received_result(self, task_id: str, wait: float = 0.0) -> TaskMeta | None:
        """For the sync facades: the ready record of ``task_id`` if the portal loop's backend received it (a
        backend that subscribes ahead, `SubscribesAhead.take_received`), waiting up to ``wait`` seconds while it
        is expected. Runs nothing on the loop; None when there is nothing to take this way."""
        backend = self._resources.connected_backend(portal.loop())
        if not isinstance(backend, SubscribesAhead):
            return None
        return backend.take_received(task_id, wait)

    async def abackend(self) -> ResultBackend:
        """This loop's shared result backend, connected on first use (concurrent callers share it)."""
        return await self._resources.backend()

    async def aclose(self) -> None:
        """Close this loop's shared transport and backend, and those sync calls opened (they reopen on next use)."""
        await self._resources.close(also=portal.running_loop())  # None on the portal's own thread (`close`)

    def close(self) -> None:
        """Close the connections the sync facades opened."""
        portal.run(self.aclose())

    @property
    def control(self) -> Control:
        """Remote control of this app's workers: ``app.control.inspect().ping()``, ``app.control.revoke(id)``."""
        if self._control is None:
            self._control = Control(self)
        return self._control

    @property
    def control_commands(self) -> CommandRegistry:
        """The remote-control commands this app's workers answer: the built-ins, plus the app's own.

        Add a command before the worker starts (each worker answers from this registry)::

            from celeriac.control import Arg, Kind
            from celeriac.control.arguments import as_int

            @app.control_commands.register(Kind.CONTROL, Arg("n", as_int))
            async def bump(node, n=1):
                return {"ok": f"bumped by {n}"}

        ``app.control.broadcast("bump", {"n": 2}, reply=True)`` then gets ``[{node: {"ok": ...}}]``. A handler
        receives the worker as control commands see it (`celeriac.control.node.ControlNode`) and the declared
        arguments, coerced; its return value is the reply (JSON-serializable).
        """
        if self._control_commands is None:
            self._control_commands = with_builtins()
        return self._control_commands

    def redacted_broker_url(self) -> str:
        """The broker URL with its password hidden (safe to log and print); a SQLite file's absolute path after it."""
        return located(redact_url(self.broker_url))

    def redacted_backend_url(self) -> str | None:
        """The result backend URL as `redacted_broker_url` shows the broker's (None when there is none)."""
        url = self.backend_url
        return located(redact_url(url)) if url else None

    # -- sending ---------------------------------------------------------------------------------
    def signature(self, varies: Any, *args: Any, **kwargs: Any) -> Signature:
        """Celery's ``app.signature``: a signature of this app, by task name (it need not be registered here:
        ``app.signature("other.task", (1,))`` sends by name) or from a signature dict."""
        return canvas_signature(varies, *args, app=self, **kwargs)

    def send_task(
        self,
        name: str,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SendOptions],
    ) -> AsyncResult[Any]:
        """Send a task by name (it need not be registered here); blocks until the broker has it."""
        return self._direct.send_blocking(name, args, kwargs, None, options)

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
        return await self._sender.send(name, args, kwargs, task, options)

    async def asend_tasks(self, signatures: Iterable[Signature], **options: Any) -> list[AsyncResult[Any]]:
        """Send many task signatures at once (`celeriac.app.bulk`); returns once the broker holds them all."""
        return await send_many(self._sender, signatures, options)

    def send_tasks(self, signatures: Iterable[Signature], **options: Any) -> list[AsyncResult[Any]]:
        """Blocking twin of `asend_tasks`."""
        return portal.run(self.asend_tasks(signatures, **options))

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
        return self._sender.build(name, args, kwargs, task, options)

    def AsyncResult(self, id: str) -> AsyncResult[Any]:
        """The result handle of the task ``id``."""
        return AsyncResult(id, app=self)

    @property
    def always_eager(self) -> bool:
        """Whether ``apply_async``/``delay`` run tasks and canvases here (``task_always_eager``)."""
        return bool(self.conf.task_always_eager)

    async def aapply_canvas(
        self, sig: Signature, args: Iterable[Any] | None, kwargs: Mapping[str, Any] | None, options: Mapping[str, Any]
    ) -> Any:
        """Run a signature, chain, group or chord here and now (`celeriac.app.eager_canvas`)."""
        return await apply_canvas(self, sig, args, kwargs, options)
