"""Autoreloader step (``--reload``, development only): restart the worker when a source file of the app changes.

The watched files are the app's own modules: those imported from the project directory (the working directory
the worker started in), never the standard library or installed packages. On a change the worker logs what
changed and shuts down warmly (stops fetching, returns reserved messages, finishes running tasks or requeues
them after ``worker_soft_shutdown_timeout``); the command line then re-executes the same command, so every
module is imported afresh. A change that does not compile (a syntax error) is logged and the running code
kept until the next change. Needs ``watchfiles`` (``pip install 'celeriac[reload]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING

from celeriac.errors import ConfigurationError
from celeriac.worker.bootsteps import Step

if TYPE_CHECKING:
    from celeriac.worker.worker import Worker

log = logging.getLogger("celeriac.worker")

#: Milliseconds of quiet after a change before it counts (an editor's save is often several writes).
DEBOUNCE_MS = 400


def _installed_roots() -> list[Path]:
    """Where the interpreter's own and installed modules live (never watched)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *sysconfig.get_paths().values()}
    return [Path(root).resolve() for root in roots if root]


def source_files(project: Path) -> set[Path]:
    """The source files of the modules imported now from ``project`` (installed packages left out)."""
    project = project.resolve()
    installed = _installed_roots()
    files: set[Path] = set()
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if not isinstance(name, str) or not name.endswith(".py"):
            continue
        path = Path(name).resolve()
        if path.is_relative_to(project) and not any(path.is_relative_to(root) for root in installed):
            files.add(path)
    return files


def _syntax_problem(path: Path) -> str | None:
    """Why ``path`` would not compile (a syntax error, or unreadable), or None."""
    try:
        compile(path.read_bytes(), str(path), "exec")
    except SyntaxError as exc:
        return f"{path.name} line {exc.lineno}: {exc.msg}"
    except (OSError, ValueError) as exc:
        return f"{path.name}: {exc}"
    return None


class Autoreloader(Step["Worker"]):
    """Watches the app's source files; on a change asks the worker for a warm restart."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.watched: set[Path] = set()

    def include_if(self, worker: Worker) -> bool:
        return worker.reload

    async def start(self, worker: Worker) -> None:
        try:
            import watchfiles  # noqa: F401 - checked here so a missing extra is a start-up error
        except ImportError:
            raise ConfigurationError("--reload needs watchfiles: pip install 'celeriac[reload]'") from None
        project = Path(os.getcwd())
        self.watched = source_files(project)
        if not self.watched:
            log.warning("--reload: no module of the app was imported from %s; nothing to watch", project)
            return
        self._stop.clear()
        self._task = asyncio.create_task(self._watch(worker, project), name="autoreloader")
        log.info("--reload: watching %d source file(s) under %s", len(self.watched), project)

    async def _watch(self, worker: Worker, project: Path) -> None:
        try:
            await self._follow(worker, project)
        except Exception as exc:  # e.g. out of inotify watches: say so, the worker itself goes on
            log.error("--reload: cannot watch the source files any more (%s); restart the worker by hand", exc)

    async def _follow(self, worker: Worker, project: Path) -> None:
        from watchfiles import awatch

        directories = sorted({path.parent for path in self.watched})
        async for changes in awatch(*directories, recursive=False, debounce=DEBOUNCE_MS, stop_event=self._stop):
            watched = self.watched | source_files(project)  # modules imported since start count too
            changed = sorted({Path(name).resolve() for _, name in changes} & watched)
            broken = [problem for problem in map(_syntax_problem, changed) if problem]
            if broken:  # a restart would only fail to import: keep the running code until the file is fixed
                log.error("--reload: not restarting, %s", "; ".join(broken))
                continue
            if changed:
                names = ", ".join(os.path.relpath(path, project) for path in changed)
                log.warning("--reload: %s changed; restarting the worker", names)
                worker.request_restart(f"changed: {names}")
                return

    async def stop(self, worker: Worker) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
