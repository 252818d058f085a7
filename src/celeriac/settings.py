"""Typed settings with Celery's lowercase names; mutable until the app is finalized, then frozen.

Each setting is declared once on `Settings` as a `Setting` with its type, default and the runtime types it
accepts, so ``app.conf.broker_url`` type-checks as ``str | None``. ``app.conf`` offers attribute and mapping
access (``conf.broker_url``, ``conf["broker_url"]``) and ``update()``. An unknown name is a one-line
`UnknownSetting` naming it with the closest known name; a value of the wrong type is a one-line
`ConfigurationError` naming the setting.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

from celeriac.errors import ConfigurationError, UnknownSetting

T = TypeVar("T")

Routes = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
"""``task_routes``: one table (task name or glob -> queue or route dict) or several, tried in order."""

_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))


class Setting(Generic[T]):
    """One setting, declared on `Settings`: its default, the runtime types its value may have, what it does.

    Reading it on a `Settings` gives the value set (or the default); setting it checks the value first.
    """

    __slots__ = ("default", "doc", "name", "types")

    def __init__(self, default: T, types: tuple[type, ...], doc: str = "") -> None:
        self.default = default
        self.types = types
        self.doc = doc
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, conf: None, owner: type | None = None) -> Setting[T]: ...
    @overload
    def __get__(self, conf: Settings, owner: type | None = None) -> T: ...
    def __get__(self, conf: Settings | None, owner: type | None = None) -> Setting[T] | T:
        if conf is None:
            return self
        value: T = conf._values.get(self.name, self.default)
        return value

    def __set__(self, conf: Settings, value: T) -> None:
        conf[self.name] = value


ENVIRONMENT = {"CELERIAC_BROKER_URL": "broker_url", "CELERIAC_RESULT_BACKEND": "result_backend"}


def _suggest(name: str) -> str | None:
    found = difflib.get_close_matches(name, OPTIONS, n=1)
    return found[0] if found else None


def check(name: str, value: Any) -> None:
    """Raise a one-line error when ``name`` is unknown or ``value`` has the wrong type."""
    option = OPTIONS.get(name)
    if option is None:
        raise UnknownSetting(name, _suggest(name))
    if not isinstance(value, option.types) or (isinstance(value, bool) and bool not in option.types):
        wanted = " or ".join(sorted(t.__name__ for t in option.types))
        raise ConfigurationError(f"setting {name!r} must be {wanted}, not {type(value).__name__} ({value!r})")


class Settings:
    """``app.conf``: every setting, declared below with its type, by attribute or key; frozen by `freeze`.

    Upper-case names (as in a Django-style config module) and Celery's ``CELERY_`` prefix are not read;
    ``config_from_object`` takes the lower-case names only, like Celery 4+.
    """

    __slots__ = ("_frozen", "_values")
    _values: dict[str, Any]
    _frozen: bool

    # broker
    broker_url = Setting[str | None](None, _OPT_STR, "broker URL; default: embedded SQLite file ./celeriac.db")
    broker_transport_options = Setting[dict[str, Any]]({}, (dict,), "visibility_timeout, polling_interval, ...")
    broker_connection_retry = Setting[bool](True, (bool,), "reconnect when the broker goes away")
    broker_connection_max_retries = Setting[int | None](None, (int, type(None)), "None: retry forever")
    broker_max_deliveries = Setting[int](10, (int,), "deliveries before a message is dead-lettered")

    # results
    result_backend = Setting[str | None](None, _OPT_STR, "result URL; default: the broker's SQLite file")
    result_backend_transport_options = Setting[dict[str, Any]]({}, (dict,))
    result_serializer = Setting[str]("json", (str,))
    result_accept_content = Setting[Sequence[str] | None](None, (list, tuple, type(None)))
    result_expires = Setting[float | None](86400, _OPT_NUM, "seconds results are kept; None: forever")
    result_extended = Setting[bool](False, (bool,), "store name, args, kwargs, worker, queue with results")
    result_subscribe_on_send = Setting[bool](
        True,
        (bool,),
        "Redis results: subscribe to a task's result channel before sending it (as Celery does), so get() finds "
        "the result already received; False: subscribe only when get() is called",
    )
    result_subscribe_max_unread = Setting[int](
        1000,
        (int,),
        "most send-time subscriptions not waited on, and most received results not read, kept per event loop "
        "(each; the oldest are dropped first, and their get() subscribes and reads the key instead)",
    )

    # tasks
    task_serializer = Setting[str]("json", (str,))
    task_compression = Setting[str | None](None, _OPT_STR)
    accept_content = Setting[Sequence[str]](["json"], (list, tuple))
    task_acks_late = Setting[bool](False, (bool,))
    task_acks_on_failure_or_timeout = Setting[bool](True, (bool,))
    task_reject_on_worker_lost = Setting[bool](False, (bool,))
    task_default_queue = Setting[str]("celery", (str,))
    task_default_exchange = Setting[str | None](None, _OPT_STR)
    task_default_routing_key = Setting[str | None](None, _OPT_STR)
    task_default_priority = Setting[int | None](None, (int, type(None)))
    task_default_delivery_mode = Setting[int](2, (int,))
    task_routes = Setting[Routes](None, (dict, list, tuple, type(None)))
    task_ignore_result = Setting[bool](False, (bool,))
    task_store_errors_even_if_ignored = Setting[bool](False, (bool,))
    task_track_started = Setting[bool](False, (bool,))
    task_time_limit = Setting[float | None](None, _OPT_NUM)
    task_soft_time_limit = Setting[float | None](None, _OPT_NUM)
    task_default_rate_limit = Setting[str | None](None, _OPT_STR)
    task_always_eager = Setting[bool](False, (bool,))
    task_send_sent_event = Setting[bool](False, (bool,))
    task_protocol = Setting[int](2, (int,))
    task_create_missing_queues = Setting[bool](True, (bool,))

    # worker
    worker_concurrency = Setting[int | None](
        None, (int, type(None)), "default: 8 for asyncio/threads, CPUs for prefork"
    )
    worker_pool = Setting[str]("asyncio", (str,))
    worker_event_loop = Setting[str]("auto", (str,), "auto (uvloop when installed), asyncio or uvloop")
    worker_prefetch_multiplier = Setting[int](4, (int,))
    worker_send_task_events = Setting[bool](False, (bool,))
    worker_hostname = Setting[str | None](None, _OPT_STR)
    worker_shutdown_timeout = Setting[float | None](None, _OPT_NUM, "seconds a warm shutdown waits; None: forever")
    worker_heartbeat_interval = Setting[float](2.0, _NUM)
    worker_enable_remote_control = Setting[bool](True, (bool,))
    worker_state_db = Setting[str | None](None, _OPT_STR)
    worker_log_format = Setting[str]("[%(asctime)s: %(levelname)s/%(processName)s] %(message)s", (str,))
    worker_max_message_bytes = Setting[int](
        64 * 1024 * 1024, (int,), "largest task body, raw or decompressed; a bigger one is rejected as undecodable"
    )
    worker_control_disabled = Setting[list[str] | tuple[str, ...]](
        (), (list, tuple), "remote-control commands this worker refuses (by name)"
    )
    worker_control_readonly = Setting[bool](
        False, (bool,), "answer inspect commands only; refuse every control command"
    )
    control_signing_key = Setting[str | None](
        None, _OPT_STR, "shared secret: callers sign control commands, workers ignore unsigned or badly signed ones"
    )

    # app
    imports = Setting[Sequence[str]]((), (list, tuple))
    include = Setting[Sequence[str]]((), (list, tuple))
    timezone = Setting[str]("UTC", (str,))
    enable_utc = Setting[bool](True, (bool,))

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_frozen", False)
        if values:
            self.update(values)

    def update(self, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Set several settings at once; checks every name and type before changing anything."""
        merged = {**(values or {}), **kwargs}
        for name, value in merged.items():
            check(name, value)
        self._ensure_mutable()
        self._values.update(merged)

    def apply_environment(self, environ: Mapping[str, str] = os.environ) -> None:
        """Let ``CELERIAC_BROKER_URL`` / ``CELERIAC_RESULT_BACKEND`` override the configured URLs."""
        for variable, name in ENVIRONMENT.items():
            if environ.get(variable):
                self[name] = environ[variable]

    def freeze(self) -> None:
        """Refuse changes from now on (the app is finalized: a message was sent or a worker started)."""
        object.__setattr__(self, "_frozen", True)

    @property
    def frozen(self) -> bool:
        """Whether changes are refused."""
        return bool(self._frozen)

    def _ensure_mutable(self) -> None:
        if self._frozen:
            raise ConfigurationError("app.conf is frozen once the app has sent a task or started a worker")

    def __getitem__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        option = OPTIONS.get(name)
        if option is None:
            raise UnknownSetting(name, _suggest(name))
        return option.default

    def __setitem__(self, name: str, value: Any) -> None:
        self.update({name: value})

    def __setattr__(self, name: str, value: Any) -> None:
        # Every attribute set is a setting: checked (name, type, frozen) by __setitem__.
        self[name] = value

    def __contains__(self, name: object) -> bool:
        return name in OPTIONS

    def __iter__(self) -> Iterator[str]:
        return iter(OPTIONS)

    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default`` when the name is unknown."""
        return self[name] if name in OPTIONS else default

    def changes(self) -> dict[str, Any]:
        """The settings given explicitly (not defaults)."""
        return dict(self._values)

    def as_dict(self) -> dict[str, Any]:
        """Every setting with its current value."""
        return {name: self[name] for name in OPTIONS}


OPTIONS: dict[str, Setting[Any]] = {name: value for name, value in vars(Settings).items() if isinstance(value, Setting)}
"""Every setting by name, in declaration order."""
