"""What canvas needs from an app, as a Protocol: canvas sits below `celeriac.app` and never imports it.

`celeriac.app.App` satisfies `CanvasHost`; a signature bound to no app finds the current one through
`set_host_finder` (the app layer registers its ``get_current_app`` there at import).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from celeriac.backends.base import ResultBackend


class ResultHandle(Protocol):
    """What canvas needs of an ``AsyncResult``: its id, and a place for its parent."""

    id: str
    parent: Any


class CanvasHost(Protocol):
    """The app as canvas sees it: send by name, open the result backend, make result handles, its tasks."""

    @property
    def tasks(self) -> Any:
        """The registered tasks by name (a mapping)."""

    @property
    def asend_task(self) -> Callable[..., Awaitable[Any]]:
        """``asend_task(name, args, kwargs, **send_options)``: publish; returns the ``AsyncResult``."""

    async def abackend(self) -> ResultBackend:
        """This loop's result backend."""

    def AsyncResult(self, id: str) -> Any:
        """The result handle of task ``id``."""

    @property
    def always_eager(self) -> bool:
        """Whether sending runs the canvas here instead (``task_always_eager``)."""

    async def aapply_canvas(self, sig: Any, args: Any, kwargs: Any, options: Any) -> Any:
        """Run the signature ``sig`` (or chain, group, chord) here and now; its eager result(s)."""


_finder: list[Callable[[], CanvasHost]] = []


def set_host_finder(finder: Callable[[], CanvasHost]) -> None:
    """Register how an unbound signature finds the current app (called once by the app layer)."""
    _finder[:] = [finder]


def current_host() -> CanvasHost:
    """The current app; `RuntimeError` when no app layer registered a finder."""
    if not _finder:
        raise RuntimeError("no celeriac app: bind the signature with app= or create an App first")
    return _finder[0]()
