"""The arguments of remote-control commands: `Arg` declarations and the coercions that turn JSON values or
command-line words into the types the handlers take; each raises ValueError on a value it cannot take."""

from __future__ import annotations

import signal as signals
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def as_str(value: Any) -> str:
    """A text argument."""
    return str(value)


def as_int(value: Any) -> int:
    """An integer argument (``"3"`` and ``3.0`` too). Raises ValueError."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return int(value)


def as_float(value: Any) -> float:
    """A number argument. Raises ValueError."""
    return float(value)


def as_bool(value: Any) -> bool:
    """A flag: JSON true/false, 0/1 (Flower sends those) or the words true/false/yes/no/1/0/on/off."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "true", "yes", "on", "y"):
            return True
        if word in ("0", "false", "no", "off", "n", ""):
            return False
        raise ValueError(f"not a true/false value: {value!r}")
    return bool(value)


def as_str_list(value: Any) -> list[str]:
    """One id or a list of them (``revoke`` accepts both)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence | set | frozenset):
        return [str(item) for item in value]
    raise ValueError(f"expected a string or a list of strings, not {type(value).__name__}")


def optional(coerce: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``coerce``, letting None (and the word ``none``) through."""

    def convert(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce(value)

    return convert


@dataclass(frozen=True, slots=True)
class Arg:
    """One declared argument: its name, how a value is coerced, whether it takes every remaining CLI word
    (then ``coerce`` gets the list of words)."""

    name: str
    coerce: Callable[[Any], Any] = as_str
    variadic: bool = False


def signum_of(value: Any) -> int:
    """A signal number from ``15``, ``"15"``, ``"SIGTERM"`` or ``"TERM"``. Raises ValueError."""
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return int(value)
    name = str(value).upper()
    found = getattr(signals, name if name.startswith("SIG") else f"SIG{name}", None)
    if not isinstance(found, int):
        raise ValueError(f"unknown signal {value!r}")
    return int(found)
