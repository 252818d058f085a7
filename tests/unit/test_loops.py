"""Choosing the worker's event loop: names, the auto choice, the errors."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from celeriac import _loops
from celeriac.errors import ConfigurationError


def test_auto_takes_uvloop_exactly_when_it_is_installed() -> None:
    installed = importlib.util.find_spec("uvloop") is not None
    assert _loops.resolve("auto") == ("uvloop" if installed else "asyncio")
    assert _loops.resolve("asyncio") == "asyncio"


def test_unknown_loop_names_the_option_and_the_choices() -> None:
    with pytest.raises(ConfigurationError, match=r"--loop: unknown event loop 'tokio'; choose one of auto, asyncio"):
        _loops.resolve("tokio", "--loop")


def test_missing_uvloop_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigurationError, match="worker_event_loop: uvloop is not installed"):
        _loops.resolve("uvloop")
    assert _loops.resolve("auto") == "asyncio"


@pytest.mark.parametrize("name", ["asyncio", "uvloop"])
def test_run_uses_the_chosen_loop(name: str) -> None:
    if name == "uvloop":
        pytest.importorskip("uvloop")

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    module = _loops.run(loop_module(), name)
    assert module.startswith("uvloop") if name == "uvloop" else module.startswith("asyncio")


def test_the_sync_portal_runs_on_the_auto_loop() -> None:
    from celeriac._portal import portal

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    expected = "uvloop" if _loops.resolve("auto") == "uvloop" else "asyncio"
    assert portal.run(loop_module()).startswith(expected)
