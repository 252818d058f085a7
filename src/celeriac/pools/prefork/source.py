"""How a ``spawn`` child finds the tasks: it imports the modules that defined them and takes the app's registry.

A forked child inherits the registry itself; a spawned one starts from a fresh interpreter, so the parent
sends `RegistryRef` (module names and task names) and the child rebuilds the registry by importing. Tasks
defined in ``__main__`` are found through multiprocessing's ``__mp_main__``; tasks made at run time (inside a
function) exist only under ``fork``.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from celeriac.errors import ConfigurationError

if TYPE_CHECKING:
    from celeriac.app.registry import TaskRegistry


@dataclass(frozen=True, slots=True)
class RegistryRef:
    """The modules to import in a spawned child, and the task names the registry found must hold."""

    modules: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def of(cls, tasks: TaskRegistry) -> RegistryRef:
        """The reference to ``tasks`` (modules of every non-builtin task function)."""
        modules = {tasks[name].fn.__module__ for name in tasks.names()}
        names = tuple(name for name in tasks.names() if not tasks[name].fn.__module__.startswith("celeriac."))
        return cls(tuple(sorted(m for m in modules if not m.startswith("celeriac."))), names)

    def load(self) -> TaskRegistry:
        """Import the modules and return the registry of the app they made that knows the most of ``names``."""
        from celeriac.app.app import App

        found: list[TaskRegistry] = []
        for name in self.modules:
            module = sys.modules.get("__mp_main__") if name == "__main__" else importlib.import_module(name)
            for value in vars(module).values() if module is not None else ():
                if isinstance(value, App):
                    found.append(value.tasks)
        if not found:
            raise ConfigurationError(f"spawn: no celeriac App found in {', '.join(self.modules) or 'no module'}")
        return max(found, key=lambda registry: sum(name in registry for name in self.names))
