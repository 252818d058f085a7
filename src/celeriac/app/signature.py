"""The ``typing`` task option: check call arguments against the task function's signature before sending.

`checker` compiles, once per task, a function with the same parameters and an empty body (as Celery's
``head_from_fun``): calling it costs what any Python call costs (~0.2 us), where ``inspect.Signature.bind`` costs
~5 us per send, and it raises the interpreter's own TypeError for arguments the body could not take.
"""

from __future__ import annotations

import inspect
import keyword
from collections.abc import Callable
from typing import Any

_KIND = inspect.Parameter


def checker(fn: Callable[..., Any], bind: bool = False) -> Callable[..., None] | None:
    """A function taking exactly the arguments ``fn`` takes (without the bound task's ``self``), or None when
    ``fn`` has no readable signature (nothing is checked then)."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if bind:
        parameters = parameters[1:]
    namespace: dict[str, Any] = {}
    parts: list[str] = []
    star_done = False
    for index, parameter in enumerate(parameters):
        if parameter.kind is _KIND.KEYWORD_ONLY and not star_done:
            parts.append("*")
            star_done = True
        if parameter.kind is _KIND.VAR_POSITIONAL:
            parts.append(f"*{parameter.name}")
            star_done = True
            continue
        if parameter.kind is _KIND.VAR_KEYWORD:
            parts.append(f"**{parameter.name}")
            continue
        text = parameter.name
        if parameter.default is not _KIND.empty:
            namespace[f"__celeriac_default_{index}"] = parameter.default
            text += f"=__celeriac_default_{index}"
        parts.append(text)
        if parameter.kind is _KIND.POSITIONAL_ONLY and (
            index + 1 == len(parameters) or parameters[index + 1].kind is not _KIND.POSITIONAL_ONLY
        ):
            parts.append("/")
    name = getattr(fn, "__name__", "task")
    name = name if name.isidentifier() and not keyword.iskeyword(name) else "task"
    # The source holds only names read from a real signature (and the function's name, checked): nothing foreign.
    exec(f"def {name}({', '.join(parts)}):\n    pass\n", namespace)
    header: Callable[..., None] = namespace[name]
    return header
