"""Exceptions across the wire: Celery's dict format both ways, Celery's names for our errors, safe rebuilding."""

from __future__ import annotations

import datetime as dt
import sys
import types
from typing import Any

import billiard.exceptions
import celery.exceptions
import pytest
from celery import Celery

from celeriac import errors
from celeriac.protocol import exception_from_dict, exception_to_dict, json_dumps
from celeriac.protocol.failures import MALFORMED


@pytest.fixture(scope="module")
def celery_backend() -> Any:
    return Celery("failures", backend="cache+memory://", set_as_current=False).backend


def test_builtin_exception_matches_the_captured_dict() -> None:
    # celery-wire.md §6.3
    assert exception_to_dict(ValueError("kaboom")) == {
        "exc_type": "ValueError",
        "exc_message": ["kaboom"],
        "exc_module": "builtins",
    }


@pytest.mark.parametrize(
    "exc",
    [ValueError("kaboom"), KeyError("again"), OSError(2, "No such file"), ZeroDivisionError(), TypeError("a", 1)],
)
def test_builtins_round_trip(exc: BaseException) -> None:
    back = exception_from_dict(exception_to_dict(exc))
    assert type(back) is type(exc)
    assert back.args == exc.args


CELERY_EQUIVALENTS = [
    (errors.UnknownTask("no.such.task"), "celery.exceptions", "NotRegistered", ["no.such.task"]),
    (errors.TaskRevokedError("expired"), "celery.exceptions", "TaskRevokedError", ["expired"]),
    # celery.exceptions re-exports billiard's time limit errors; Celery stores the defining module
    (errors.TimeLimitExceeded(60.0), "billiard.exceptions", "TimeLimitExceeded", [60.0]),
    (errors.SoftTimeLimitExceeded(), "billiard.exceptions", "SoftTimeLimitExceeded", []),
    (errors.WorkerLostError("Worker exited prematurely"), "billiard.exceptions", "WorkerLostError",
     ["Worker exited prematurely"]),
    (errors.MaxRetriesExceededError("too many"), "celery.exceptions", "MaxRetriesExceededError", ["too many"]),
    (errors.Reject("no thanks", False), "celery.exceptions", "Reject", ["no thanks", False]),
]  # fmt: skip


@pytest.mark.parametrize(("exc", "module", "name", "args"), CELERY_EQUIVALENTS)
def test_our_errors_travel_under_celery_names(exc: BaseException, module: str, name: str, args: list[Any]) -> None:
    data = exception_to_dict(exc)
    assert data == {"exc_type": name, "exc_message": args, "exc_module": module}
    back = exception_from_dict(data)
    assert type(back) is type(exc)
    assert exception_to_dict(back) == data


@pytest.mark.parametrize(("exc", "module", "name", "args"), CELERY_EQUIVALENTS)
def test_celery_rebuilds_our_errors_as_its_own(
    celery_backend: Any, exc: BaseException, module: str, name: str, args: list[Any]
) -> None:
    rebuilt = celery_backend.exception_to_python(exception_to_dict(exc))
    expected = {"celery.exceptions": celery.exceptions, "billiard.exceptions": billiard.exceptions}[module]
    assert type(rebuilt) is getattr(expected, name)
    assert list(rebuilt.args) == args


def test_celery_rebuilds_builtins(celery_backend: Any) -> None:
    rebuilt = celery_backend.exception_to_python(exception_to_dict(ValueError("kaboom")))
    assert type(rebuilt) is ValueError and rebuilt.args == ("kaboom",)


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        (celery.exceptions.NotRegistered("no.such.task"), errors.UnknownTask),
        (celery.exceptions.TaskRevokedError("revoked"), errors.TaskRevokedError),
        (celery.exceptions.TimeLimitExceeded(5), errors.TimeLimitExceeded),
        (celery.exceptions.SoftTimeLimitExceeded(), errors.SoftTimeLimitExceeded),
        (billiard.exceptions.WorkerLostError("lost"), errors.WorkerLostError),
        (celery.exceptions.MaxRetriesExceededError("max"), errors.MaxRetriesExceededError),
        (celery.exceptions.Reject("no thanks", False), errors.Reject),
        (ValueError("kaboom"), ValueError),
    ],
)
def test_we_rebuild_what_celery_stores(celery_backend: Any, theirs: BaseException, ours: type) -> None:
    stored = celery_backend.prepare_exception(theirs)
    back = exception_from_dict(stored)
    assert type(back) is ours
    assert exception_to_dict(back) == {**stored, "exc_message": list(stored["exc_message"])}


@pytest.mark.parametrize("name", ["TimeLimitExceeded", "SoftTimeLimitExceeded", "WorkerLostError"])
def test_billiard_errors_are_also_read_under_their_celery_import_path(name: str) -> None:
    back = exception_from_dict({"exc_type": name, "exc_message": [], "exc_module": "celery.exceptions"})
    assert type(back) is getattr(errors, name)


def test_unknown_task_keeps_its_name() -> None:
    back = exception_from_dict({"exc_type": "NotRegistered", "exc_message": ["no.such.task"],
                                "exc_module": "celery.exceptions"})  # fmt: skip
    assert isinstance(back, errors.UnknownTask) and back.name == "no.such.task"


def test_reject_keeps_reason_and_requeue() -> None:
    back = exception_from_dict(exception_to_dict(errors.Reject("full", requeue=True)))
    assert isinstance(back, errors.Reject) and (back.reason, back.requeue) == ("full", True)


def test_remote_error_is_described_by_its_original_names() -> None:
    remote = errors.RemoteError("CustomError", "myapp.errors", ["boom", 3])
    data = exception_to_dict(remote)
    assert data == {"exc_type": "CustomError", "exc_message": ["boom", 3], "exc_module": "myapp.errors"}
    back = exception_from_dict(data)
    assert isinstance(back, errors.RemoteError)
    assert (back.exc_type, back.exc_module, back.exc_args) == ("CustomError", "myapp.errors", ["boom", 3])


def test_arguments_json_cannot_carry_become_reprs() -> None:
    marker = object()
    data = exception_to_dict(ValueError("text", marker, {1, 2}, b"raw", dt.date(2024, 1, 2)))
    assert data["exc_message"] == ["text", repr(marker), repr({1, 2}), b"raw", dt.date(2024, 1, 2)]
    json_dumps(data)  # storable as is


def test_a_repr_that_fails_does_not_lose_the_record() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert exception_to_dict(ValueError(Hostile()))["exc_message"] == ["<unrepresentable Hostile>"]


class LocalError(Exception):
    """An exception class of an imported module (this test module)."""


def test_classes_of_imported_modules_are_rebuilt() -> None:
    data = exception_to_dict(LocalError("x"))
    assert data == {"exc_type": "LocalError", "exc_message": ["x"], "exc_module": __name__}
    assert type(exception_from_dict(data)) is LocalError


def test_celeriac_modules_are_rebuilt() -> None:
    back = exception_from_dict(exception_to_dict(errors.DecodeError("bad shape")))
    assert isinstance(back, errors.DecodeError) and back.reason == "bad shape"


def test_modules_not_yet_imported_are_never_imported() -> None:
    name = "this"  # importing it prints the Zen of Python: a visible import-time side effect
    if name in sys.modules:
        pytest.skip(f"{name} was already imported by something else")
    back = exception_from_dict({"exc_type": "Whatever", "exc_message": ["x"], "exc_module": name})
    assert name not in sys.modules
    assert isinstance(back, errors.RemoteError)
    assert (back.exc_type, back.exc_module, back.exc_args) == ("Whatever", name, ["x"])


@pytest.mark.parametrize(
    ("exc_type", "exc_module"),
    [
        ("dict", "builtins"),  # not an exception
        ("SystemExit", "builtins"),  # would exit the caller that re-raises it
        ("KeyboardInterrupt", "builtins"),
        ("CancelledError", "asyncio"),  # would cancel the awaiting caller
        ("NoSuchError", "builtins"),
        ("path", "os"),  # a module, not a class
        ("test_classes_of_imported_modules_are_rebuilt.<locals>.X", __name__),
        ("__class__", "builtins"),
        ("UnicodeDecodeError", "builtins"),  # needs five arguments, gets one
    ],
)
def test_what_cannot_be_rebuilt_becomes_remote_error(exc_type: str, exc_module: str) -> None:
    back = exception_from_dict({"exc_type": exc_type, "exc_message": ["m"], "exc_module": exc_module})
    assert isinstance(back, errors.RemoteError)
    assert (back.exc_type, back.exc_module, back.exc_args) == (exc_type, exc_module, ["m"])
    assert str(back) == f"{exc_type}: m"


def test_old_formats_are_read() -> None:
    # a message string instead of a list, and no module: builtins are assumed
    back = exception_from_dict({"exc_type": "ValueError", "exc_message": "kaboom"})
    assert type(back) is ValueError and back.args == ("kaboom",)
    assert exception_from_dict({"exc_type": "ValueError", "exc_message": None}).args == ()


@pytest.mark.parametrize(
    "data",
    [None, [], "ValueError", 3, {}, {"exc_type": 5}, {"exc_type": "ValueError", "exc_module": 7},
     {"exc_type": None, "exc_message": ["x"]}],
)  # fmt: skip
def test_malformed_input_comes_back_as_remote_error(data: Any) -> None:
    back = exception_from_dict(data)
    assert isinstance(back, errors.RemoteError) and back.exc_type == MALFORMED


def test_lookup_does_not_run_a_module_getattr(monkeypatch: pytest.MonkeyPatch) -> None:
    lazy = types.ModuleType("celeriac_test_lazy")
    calls: list[str] = []

    def module_getattr(name: str) -> Any:  # what a lazy-importing package does on attribute access
        calls.append(name)
        return ValueError

    setattr(lazy, "__getattr__", module_getattr)  # noqa: B010
    monkeypatch.setitem(sys.modules, lazy.__name__, lazy)
    back = exception_from_dict({"exc_type": "Lazy", "exc_message": [], "exc_module": lazy.__name__})
    assert isinstance(back, errors.RemoteError)
    assert calls == []
