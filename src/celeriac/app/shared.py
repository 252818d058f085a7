"""``@shared_task``: a task declared without an app (reusable apps, Django), registered on every app.

The declaration is remembered (`celeriac.app.current`); the current app registers it at once when there is
one, and every app when it finalizes. What ``@shared_task`` returns is a `SharedTask` proxy: each use
(``.delay()``, a call, any attribute) goes to that task in the app current at that moment, as Celery's proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, Unpack, overload

from celeriac.app.current import declare_shared, default_app, get_current_app
from celeriac.app.options import TaskOptions, check_task_options

if TYPE_CHECKING:
    from celeriac.app.app import App
    from celeriac.app.task import BoundTaskDecorator, Task, TaskDecorator

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class SharedDefinition:
    """One ``@shared_task`` declaration: the function, ``bind``, ``base`` and the other options."""

    fn: Callable[..., Any]
    bind: bool = False
    base: type[Task[Any, Any]] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The task name it registers under."""
        given = self.options.get("name") or (self.base.name if self.base is not None else "")
        return str(given or f"{self.fn.__module__}.{self.fn.__qualname__}")

    def register(self, app: App) -> Task[Any, Any]:
        """This declaration's task in ``app``, registered there first if it is not yet."""
        task = app.tasks.get(self.name)
        if task is not None and task.fn is self.fn:
            return task
        untyped: Any = app  # the options were checked at declaration; mypy cannot match them to the overloads
        decorator = untyped.task(bind=self.bind, base=self.base, **self.options)
        registered: Task[Any, Any] = decorator(self.fn)
        return registered


class SharedTask:
    """Stands for a shared task: every use goes to the task of the app current at that moment."""

    __slots__ = ("_definition",)

    def __init__(self, definition: SharedDefinition) -> None:
        self._definition = definition

    def __repr__(self) -> str:
        return f"<@shared_task: {self._definition.name}>"

    def _task(self) -> Task[Any, Any]:
        return self._definition.register(get_current_app())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._task()(*args, **kwargs)


@overload
def shared_task(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Task[P, R]: ...
@overload
def shared_task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def shared_task(
    *, bind: Literal[True], base: type[Task[Any, Any]] | None = None, **options: Unpack[TaskOptions]
) -> BoundTaskDecorator: ...
@overload
def shared_task(
    *, bind: Literal[False] = False, base: type[Task[Any, Any]] | None = None, **options: Unpack[TaskOptions]
) -> TaskDecorator: ...


def shared_task(
    fn: Callable[..., Any] | None = None, /, *, bind: bool = False, base: type[Task[Any, Any]] | None = None,
    **options: Unpack[TaskOptions],
) -> Any:  # fmt: skip
    """Declare a task for every app: ``@shared_task`` or ``@shared_task(bind=True, ...)`` (`App.task`'s
    options). What it returns stands for the task (a `SharedTask`; typed as the `Task` it resolves to)."""
    check_task_options(options)

    def declare(function: Callable[..., Any]) -> SharedTask:
        definition = SharedDefinition(function, bind, base, dict(options))
        declare_shared(definition.name, definition)
        app = default_app()
        if app is not None:
            definition.register(app)
        return SharedTask(definition)

    return declare(fn) if fn is not None else declare
