"""Signature: one task call as data, a dict exactly as Celery serializes it into messages.

The keys are Celery's (``task``, ``args``, ``kwargs``, ``options``, ``subtask_type``, ``immutable``, and
``chord_size`` once set), so a signature from a Celery client reads here and one built here reads in Celery.
Partial arguments merge as Celery's do: arguments given at call time come first (a parent's result is
prepended), keyword arguments given later win, options given later win; an immutable signature (``.si()``)
takes no partial arguments.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from celeriac._portal import portal
from celeriac.canvas.host import CanvasHost, current_host
from celeriac.canvas.options import send_options

if TYPE_CHECKING:
    from celeriac.canvas.primitives import chain


class Signature(dict[str, Any]):
    """A task name with (partial) arguments and send options: send it, link it, compose it with ``|``."""

    #: subtask_type -> class, filled by the primitives module (``chain``, ``group``, ``chord``, ...).
    TYPES: ClassVar[dict[str, type[Signature]]] = {}

    def __init__(
        self,
        task: Any = None,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        subtask_type: str | None = None,
        immutable: bool = False,
        app: CanvasHost | None = None,
        **ex: Any,
    ) -> None:
        self._app = app
        self._type: Any = None
        if isinstance(task, Mapping):
            super().__init__(task)
            return
        name = getattr(task, "name", task)
        if name is not task:
            self._type = task
            self._app = app or getattr(task, "app", None)
        if not isinstance(name, str):
            raise TypeError(f"a signature needs a task name or a task, not {type(task).__name__}")
        super().__init__(
            task=name,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options={**(options or {}), **ex},
            subtask_type=subtask_type,
            immutable=immutable,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: CanvasHost | None = None) -> Signature:
        """The signature (or chain, group, chord, ...) a message's dict describes."""
        kind = d.get("subtask_type")
        if kind:
            target = cls.TYPES.get(kind)
            if target is None:
                raise ValueError(f"unknown canvas subtask_type {kind!r} (known: {', '.join(sorted(cls.TYPES))})")
            if target is not cls:
                return target.from_dict(d, app=app)
        return Signature(d, app=app)

    # -- the dict's fields ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The task name."""
        return str(self["task"])

    task = name

    @property
    def args(self) -> tuple[Any, ...]:
        """The partial positional arguments."""
        return tuple(self.get("args") or ())

    @property
    def kwargs(self) -> dict[str, Any]:
        """The partial keyword arguments."""
        return dict(self.get("kwargs") or {})

    @property
    def options(self) -> dict[str, Any]:
        """The send options (``task_id``, ``queue``, ``link``, ...); mutable in place."""
        opts = self.get("options")
        if not isinstance(opts, dict):
            opts = self["options"] = dict(opts or {})
        return opts

    @property
    def subtask_type(self) -> str | None:
        """None for a task call; ``chain``, ``group``, ``chord``, ``chunks``, ``xmap``, ``xstarmap`` else."""
        value = self.get("subtask_type")
        return None if value is None else str(value)

    @property
    def immutable(self) -> bool:
        """True when partial arguments (a parent's result) are not taken."""
        return bool(self.get("immutable"))

    @property
    def chord_size(self) -> int | None:
        """How many header results the chord this is the body of waits for (None when not a body)."""
        value = self.get("chord_size")
        return None if value is None else int(value)

    @chord_size.setter
    def chord_size(self, value: int | None) -> None:
        self["chord_size"] = value

    @property
    def id(self) -> str | None:
        """The task id frozen into the options, if any."""
        value = self.options.get("task_id")
        return None if value is None else str(value)

    @property
    def app(self) -> CanvasHost:
        """The app this signature sends through (the current one when unbound)."""
        return self._app or current_host()

    # -- building -----------------------------------------------------------------------------------
    def clone(self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **opts: Any) -> Any:
        """A copy with partial arguments merged in (see the module docstring); nested options are copied."""
        d = {k: v for k, v in self.items()}
        d["args"], d["kwargs"], d["options"] = self._merge(args, kwargs, opts)
        copy = type(self).from_dict(d, app=self._app)
        copy._type = self._type
        return copy

    def _merge(
        self, args: Iterable[Any] | None, kwargs: Mapping[str, Any] | None, opts: Mapping[str, Any] | None
    ) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        options = {**self.options, **(opts or {})}
        for key in ("link", "link_error"):
            if isinstance(options.get(key), list):
                options[key] = list(options[key])
        if self.immutable:
            return list(self.args), self.kwargs, options
        return [*(args or ()), *self.args], {**self.kwargs, **(kwargs or {})}, options

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Set send options (``queue``, ``countdown``, ``link`` ...) in place; returns the signature."""
        if immutable is not None:
            self["immutable"] = immutable
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        """Make the signature (im)mutable: whether a parent's result is prepended."""
        self["immutable"] = immutable

    def link(self, callback: Mapping[str, Any]) -> Any:
        """Run ``callback`` with this task's result when it succeeds; returns the callback."""
        return self._append("link", callback)

    def link_error(self, errback: Mapping[str, Any]) -> Any:
        """Send ``errback`` with this task's id when it fails; returns the errback."""
        return self._append("link_error", errback)

    def on_error(self, errback: Mapping[str, Any]) -> Signature:
        """Celery's chaining form of `link_error`: adds ``errback`` and returns this signature."""
        self.link_error(errback)
        return self

    def _append(self, key: str, sig: Mapping[str, Any]) -> Any:
        current = self.options.get(key)
        items = [] if current is None else list(current) if isinstance(current, list | tuple) else [current]
        items.append(sig)
        self.options[key] = items
        return sig

    def freeze(self, _id: str | None = None, **opts: Any) -> Any:
        """Fix the task id now, unless fixed already (``_id``, else a new one); returns its ``AsyncResult``."""
        self.options.update(opts)
        if not self.options.get("task_id"):
            self.options["task_id"] = _id or str(uuid.uuid4())
        return self.app.AsyncResult(str(self.options["task_id"]))

    def __or__(self, other: Any) -> chain:  # type: ignore[override]  # composition, not dict union
        if not isinstance(other, Signature):
            return NotImplemented
        made: chain = self.TYPES["chain"](self, other, app=self._app)  # type: ignore[assignment]
        return made

    # -- sending ------------------------------------------------------------------------------------
    def delay(self, *args: Any, **kwargs: Any) -> Any:
        """Send with these partial arguments; blocks until the broker has it."""
        return self.apply_async(args, kwargs)

    async def adelay(self, *args: Any, **kwargs: Any) -> Any:
        """Async twin of `delay`."""
        return await self.aapply_async(args, kwargs)

    def apply_async(
        self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **opts: Any
    ) -> Any:
        """Send with partial arguments and options; returns the ``AsyncResult`` (group/chord: their results)."""
        return portal.run(self.aapply_async(args, kwargs, **opts))

    async def aapply_async(
        self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **opts: Any
    ) -> Any:
        """Async twin of `apply_async`."""
        if self.app.always_eager:
            return await self.aapply(args, kwargs, **opts)
        a, kw, options = self._merge(args, kwargs, opts)
        return await self.app.asend_task(self.name, a, kw, **send_options(options))

    def apply(self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **opts: Any) -> Any:
        """Run it here and now (a chain step by step, a group's members, a chord's header then body), callbacks
        and errbacks too, as Celery's eager mode does; the ``EagerResult`` (a group: a ``GroupResult`` of them).
        ``throw=True`` (default ``task_eager_propagates``) raises the first failure."""
        return portal.run(self.aapply(args, kwargs, **opts))

    async def aapply(
        self, args: Iterable[Any] | None = None, kwargs: Mapping[str, Any] | None = None, **opts: Any
    ) -> Any:
        """Async twin of `apply` (the bodies run on this loop)."""
        return await self.app.aapply_canvas(self, args, kwargs, opts)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task here and now with the merged arguments (needs the task object, as ``Task.s()`` gives)."""
        if self._type is None:
            self._type = self.app.tasks[self.name]
        a, kw, _ = self._merge(args, kwargs, None)
        return self._type(*a, **kw)

    def __repr__(self) -> str:
        args = ", ".join([*map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())])
        return f"{self.name}({args}){'' if not self.immutable else ' (immutable)'}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (dict(self),))


def _rebuild(d: dict[str, Any]) -> Signature:
    return Signature.from_dict(d)


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """A signature from a task name (with args, kwargs, options), a task, or a dict from a message."""
    app: CanvasHost | None = kwargs.pop("app", None)
    if isinstance(varies, Mapping) and not args and not kwargs:
        return varies if isinstance(varies, Signature) else Signature.from_dict(varies, app=app)
    made = Signature(varies, *args, **kwargs)
    made._app = app or made._app
    return made


def maybe_signature(d: Any, app: CanvasHost | None = None) -> Signature | None:
    """``d`` as a `Signature` (None stays None)."""
    if d is None:
        return None
    if isinstance(d, Signature):
        return d
    if not isinstance(d, Mapping):
        raise TypeError(f"expected a signature (a dict), got {type(d).__name__}")
    return Signature.from_dict(d, app=app)
