"""The arguments of remote-control commands: `Arg` declarations and the coercions that turn JSON values or
command-line words into the types the handlers take; each raises ValueError on a value it cannot take.

Anyone who can publish on the broker can send a command, so every built-in argument is bounded: lengths of
names, counts of ids, ranges of numbers (the limits below); a ValueError names the limit, never echoes a
huge value.
"""

from __future__ import annotations

import math
import signal as signals
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

MAX_NAME: Final = 256
"""The longest task name, queue name, exchange, routing key, node name or id a command takes."""
MAX_TEXT: Final = 1024
"""The longest free text (a shutdown message)."""
MAX_IDS: Final = 100_000
"""The most task ids one command takes (``revoke``, ``query_task``)."""
MAX_POOL: Final = 1000
"""The most pool slots ``pool_grow`` can reach, and the most ``pool_grow``/``pool_shrink``/``autoscale`` take."""
MAX_QUEUES: Final = 64
"""The most queues ``add_consumer`` lets a worker consume from."""
MAX_SECONDS: Final = 365 * 24 * 3600.0
"""The longest time limit ``time_limit`` sets."""


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: safe in an error reply or a log line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


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


def summarize(ids: Sequence[str], first: int = 5) -> str:
    """``ids`` for a log line: all of them when few, else the count and the ``first`` few."""
    if len(ids) <= first:
        return ", ".join(ids)
    return f"{len(ids)} ids: {', '.join(ids[:first])}, ... ({len(ids) - first} more)"


def as_id(value: Any) -> str:
    """A task id (or another free-form name): a non-empty string of at most `MAX_NAME` printable characters
    (numbers are taken as their text, as the command line gives them). Raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a name, not {type(value).__name__}")
    word = str(value)
    if not word or len(word) > MAX_NAME:
        raise ValueError(f"a name must have 1 to {MAX_NAME} characters, not {len(word)}")
    if not word.isprintable():
        raise ValueError(f"a name cannot hold control characters: {shown(word)}")
    return word


def as_name(value: Any) -> str:
    """A name (task, queue, exchange, node): as `as_id`, without spaces. Raises ValueError."""
    word = as_id(value)
    if any(char.isspace() for char in word):
        raise ValueError(f"a name cannot hold spaces: {shown(word)}")
    return word


def as_text(value: Any) -> str:
    """Free text of at most `MAX_TEXT` characters. Raises ValueError."""
    result = str(value)
    if len(result) > MAX_TEXT:
        raise ValueError(f"text longer than {MAX_TEXT} characters")
    return result


def int_in(low: int, high: int) -> Callable[[Any], int]:
    """An integer between ``low`` and ``high`` (both included)."""

    def convert(value: Any) -> int:
        number = as_int(value)
        if not low <= number <= high:
            raise ValueError(f"{number} is not between {low} and {high}")
        return number

    return convert


def seconds(value: Any) -> float:
    """A duration: a finite number of seconds above 0 and at most `MAX_SECONDS`. Raises ValueError."""
    number = as_float(value)
    if not math.isfinite(number) or not 0 < number <= MAX_SECONDS:
        raise ValueError(f"{shown(value)} is not a number of seconds above 0 and at most {MAX_SECONDS:.0f}")
    return number


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


def name_list(most: int = MAX_IDS) -> Callable[[Any], list[str]]:
    """One id or a list of at most ``most`` of them, each checked by `as_id`."""

    def convert(value: Any) -> list[str]:
        if isinstance(value, Sequence | set | frozenset) and not isinstance(value, str) and len(value) > most:
            raise ValueError(f"{len(value)} values; at most {most} are taken at once")
        return [as_id(item) for item in as_str_list(value)]

    return convert


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
    """A signal number this platform has, from ``15``, ``"15"``, ``"SIGTERM"`` or ``"TERM"``. Raises ValueError."""
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        number = int(value)
        if number not in signals.valid_signals():
            raise ValueError(f"unknown signal {shown(value)}")
        return number
    word = str(value).upper()
    found = getattr(signals, word if word.startswith("SIG") else f"SIG{word}", None)
    if not isinstance(found, int):
        raise ValueError(f"unknown signal {shown(value)}")
    return int(found)
