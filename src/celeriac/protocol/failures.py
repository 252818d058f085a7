"""Carry a task's exception across the wire as Celery's ``{exc_type, exc_message, exc_module}`` and back.

The dict is what Celery stores in a FAILURE/RETRY/REVOKED result (celery-wire.md §6.3), so Celery clients can
read ours and we can read theirs. celeriac's own errors travel under Celery's names where Celery has the same
condition (our `UnknownTask` is Celery's ``celery.exceptions.NotRegistered``), and come back as ours.

Rebuilding is the risky direction: the dict names a module and a class, and importing a module named by a
message would let any sender run import-time code here. So a class is only looked up in a module that is
already imported, or in celeriac itself; everything else comes back as `RemoteError`, which keeps the names
and arguments. So does an exception that is not an `Exception` (``SystemExit``, ``KeyboardInterrupt``,
``asyncio.CancelledError``): re-raised by ``result.get()``, it would exit or cancel the caller instead of
reporting the task's failure.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Mapping
from typing import Any

import celeriac.errors as errors
from celeriac.protocol.serializers import json_dumps

MALFORMED = "MalformedExceptionInfo"

# Our error types and the (module, qualname) Celery gives the same condition (celery-wire.md §6.3). The time
# limit errors are billiard's: celery.exceptions re-exports them, and Celery stores their defining module.
_SAME_CONDITION: tuple[tuple[type[Exception], str, str], ...] = (
    (errors.UnknownTask, "celery.exceptions", "NotRegistered"),
    (errors.TaskRevokedError, "celery.exceptions", "TaskRevokedError"),
    (errors.TimeLimitExceeded, "billiard.exceptions", "TimeLimitExceeded"),
    (errors.SoftTimeLimitExceeded, "billiard.exceptions", "SoftTimeLimitExceeded"),
    (errors.WorkerLostError, "billiard.exceptions", "WorkerLostError"),
    (errors.MaxRetriesExceededError, "celery.exceptions", "MaxRetriesExceededError"),
    (errors.Reject, "celery.exceptions", "Reject"),
    (errors.ChordError, "celery.exceptions", "ChordError"),
)
_CELERY_NAMES: dict[type[BaseException], tuple[str, str]] = {ours: (m, n) for ours, m, n in _SAME_CONDITION}
_FROM_CELERY: dict[tuple[str, str], type[Exception]] = {
    **{(m, n): ours for ours, m, n in _SAME_CONDITION},
    # the re-exported names, as a sender that names the import path would write them
    ("celery.exceptions", "TimeLimitExceeded"): errors.TimeLimitExceeded,
    ("celery.exceptions", "SoftTimeLimitExceeded"): errors.SoftTimeLimitExceeded,
    ("celery.exceptions", "WorkerLostError"): errors.WorkerLostError,
}


def _json_safe(value: Any) -> Any:
    """``value`` if kombu JSON can carry it, else its ``repr()``, so storing a result never fails on it."""
    try:
        json_dumps(value)
    except (TypeError, ValueError, RecursionError):
        try:
            return repr(value)
        except Exception:  # a __repr__ that fails still must not lose the whole failure record
            return f"<unrepresentable {type(value).__name__}>"
    return value


def _wire_args(exc: BaseException) -> list[Any]:
    if isinstance(exc, errors.RemoteError):
        return list(exc.exc_args)
    if isinstance(exc, errors.UnknownTask):
        return [exc.name]  # Celery's NotRegistered carries just the task name
    return list(exc.args)


def exception_to_dict(exc: BaseException) -> dict[str, Any]:
    """Describe ``exc`` the way Celery stores it: ``{"exc_type", "exc_message", "exc_module"}``.

    ``exc_message`` is the list of the exception's arguments; any argument kombu JSON cannot carry is replaced
    by its ``repr()``. A `RemoteError` is described by the original names it carries.
    """
    if isinstance(exc, errors.RemoteError):
        module, qualname = exc.exc_module, exc.exc_type
    else:
        module, qualname = _CELERY_NAMES.get(type(exc), (type(exc).__module__, type(exc).__qualname__))
    return {
        "exc_type": qualname,
        "exc_message": [_json_safe(arg) for arg in _wire_args(exc)],
        "exc_module": module,
    }


def _is_celeriac(module_name: str) -> bool:
    return module_name == "celeriac" or module_name.startswith("celeriac.")


def _find_class(module_name: str, qualname: str) -> type[Exception] | None:
    """The exception class named, without importing anything but celeriac modules; None if unavailable."""
    mapped = _FROM_CELERY.get((module_name, qualname))
    if mapped is not None:
        return mapped
    module = sys.modules.get(module_name)
    try:
        if module is None and _is_celeriac(module_name):
            module = importlib.import_module(module_name)
        found: Any = module
        for part in qualname.split("."):
            if found is None or not part.isidentifier():
                return None
            # Static lookup: a module-level __getattr__ (PEP 562 lazy loading) could import more modules.
            found = inspect.getattr_static(found, part, None)
    except Exception:  # a broken celeriac import
        return None
    if isinstance(found, type) and issubclass(found, Exception):
        return found
    return None


def exception_from_dict(data: Mapping[str, Any]) -> BaseException:
    """Rebuild the exception described by a Celery failure dict; never raises.

    Celery's names for celeriac's conditions come back as celeriac's errors (``NotRegistered`` as
    `UnknownTask`, ...). A class that is not importable under the rules in the module docstring, is not an
    `Exception`, or refuses the stored arguments comes back as `RemoteError(exc_type, exc_module, args)`;
    malformed input comes back as a `RemoteError` whose ``exc_type`` is ``MALFORMED``.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("exc_type"), str):
        return errors.RemoteError(MALFORMED, None, [_json_safe(data)])
    qualname: str = data["exc_type"]
    module_name = data.get("exc_module")
    if module_name is not None and not isinstance(module_name, str):
        return errors.RemoteError(MALFORMED, None, [_json_safe(dict(data))])
    message = data.get("exc_message")
    # Celery stores a list; very old clients stored the message string itself.
    args = [] if message is None else list(message) if isinstance(message, list | tuple) else [message]

    cls = _find_class(module_name or "builtins", qualname)
    if cls is not None:
        try:
            return cls(*args)
        except Exception:  # the class's __init__ wants other arguments than the ones stored
            pass
    return errors.RemoteError(qualname, module_name, args)


__all__ = ["MALFORMED", "exception_from_dict", "exception_to_dict"]
