"""Which event loop runs a worker: asyncio's own, or uvloop (the ``worker_event_loop`` setting, ``--loop``).

uvloop runs the same asyncio code with its scheduling and socket I/O in C. In the benchmark a worker spends a
quarter of its time in the event loop itself, and uvloop takes a sixth off its CPU per task
(bench/README.md). ``auto``, the default, uses uvloop when it is installed (``pip install celeriac[fast]``).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from celeriac.errors import ConfigurationError

T = TypeVar("T")
LOOPS = ("auto", "asyncio", "uvloop")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def resolve(name: str, option: str = "worker_event_loop") -> str:
    """The loop ``name`` stands for: ``asyncio`` or ``uvloop`` (``auto``: uvloop when installed).

    Raises:
        ConfigurationError: an unknown name, or uvloop asked for but not installed (naming ``option``).
    """
    if name not in LOOPS:
        raise ConfigurationError(f"{option}: unknown event loop {name!r}; choose one of {', '.join(LOOPS)}")
    installed = importlib.util.find_spec("uvloop") is not None
    if name == "uvloop" and not installed:
        raise ConfigurationError(f"{option}: uvloop is not installed (pip install uvloop, or celeriac[fast])")
    if name == "auto":
        return "uvloop" if installed else "asyncio"
    return name


def factory(name: str) -> LoopFactory | None:
    """A new-loop factory for `asyncio.Runner` (None: asyncio's default); ``name`` as `resolve` returns it."""
    if name != "uvloop":
        return None
    import uvloop

    new_loop: LoopFactory = uvloop.new_event_loop
    return new_loop


def run(main: Coroutine[Any, Any, T], name: str) -> T:
    """Run ``main`` to completion on a new loop of kind ``name`` (as `resolve` returns it), like `asyncio.run`."""
    with asyncio.Runner(loop_factory=factory(name)) as runner:
        return runner.run(main)
