"""Remote-control abuse without a broker: bounded arguments, disabled commands, read-only mode, signatures,
summarized revokes (issue 10, item 9)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from celeriac.control.arguments import MAX_IDS, as_name, int_in, name_list, seconds, signum_of, summarize
from celeriac.control.builtin import with_builtins
from celeriac.control.guard import ControlGuard
from celeriac.control.messages import ControlRequest, request_message
from celeriac.control.signing import HEADER, MAX_AGE, sign_message, signature_problem

BUILTIN = with_builtins()


class Node:
    """Just enough of a ControlNode for the commands whose arguments are checked here."""

    hostname = "w@h"
    tasks = {"t.add": object()}

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def resize_pool(self, delta: int) -> None:
        self.calls.append(("resize", delta))

    def set_time_limit(self, task_name: str, soft: float | None, hard: float | None) -> None:
        self.calls.append(("time_limit", task_name, soft, hard))

    async def add_consumer(self, queue: str) -> None:
        self.calls.append(("add_consumer", queue))

    async def revoke(self, ids: list[str], terminate: bool, signum: int) -> list[str]:
        self.calls.append(("revoke", len(ids)))
        return []


@pytest.mark.parametrize(
    ("method", "arguments", "reason"),
    [
        ("pool_grow", {"n": 200_000}, "200000 is not between 1 and 1000"),
        ("pool_grow", {"n": -5}, "-5 is not between 1 and 1000"),
        ("pool_shrink", {"n": 0}, "0 is not between 1 and 1000"),
        ("time_limit", {"task_name": "t.add", "hard": -1}, "-1 is not a number of seconds"),
        ("time_limit", {"task_name": "t.add", "soft": "nan"}, "'nan' is not a number of seconds"),
        ("time_limit", {"task_name": "t.add", "hard": 1e300}, "is not a number of seconds"),
        ("add_consumer", {"queue": "x" * 10_000}, "a name must have 1 to 256 characters, not 10000"),
        ("add_consumer", {"queue": "a b"}, "cannot hold spaces"),
        ("revoke", {"task_id": ["i"] * (MAX_IDS + 1)}, f"{MAX_IDS + 1} values; at most {MAX_IDS}"),
        ("revoke", {"task_id": "x", "signal": 99999}, "unknown signal 99999"),
        ("autoscale", {"max": 10**9}, "is not between 0 and 1000"),
    ],
)
async def test_out_of_bounds_arguments_are_error_replies_and_change_nothing(
    method: str, arguments: dict[str, Any], reason: str
) -> None:
    node = Node()
    reply = await BUILTIN.dispatch(node, method, arguments)
    assert set(reply) == {"error"} and reason in reply["error"], reply
    assert len(reply["error"]) < 300  # never echoes a huge value
    assert node.calls == []


async def test_in_bounds_arguments_still_work() -> None:
    node = Node()
    assert await BUILTIN.dispatch(node, "pool_grow", {"n": 3}) == {"ok": "pool will grow"}
    assert await BUILTIN.dispatch(node, "time_limit", {"task_name": "t.add", "soft": 10, "hard": "20"}) == {
        "ok": "time limits set successfully"
    }
    assert await BUILTIN.dispatch(node, "time_limit", {"task_name": "t.add", "hard": None}) == {
        "ok": "time limits set successfully"
    }
    assert await BUILTIN.dispatch(node, "revoke", {"task_id": ["a"] * 1000, "signal": "TERM"}) == {
        "ok": "tasks {'a'} flagged as revoked"
    }
    assert node.calls == [("resize", 3), ("time_limit", "t.add", 10.0, 20.0), ("time_limit", "t.add", None, None),
                          ("revoke", 1)]  # fmt: skip


def test_coercers_bound_their_values() -> None:
    assert as_name("celery") == "celery" and as_name(3) == "3"
    assert int_in(1, 3)("2") == 2
    assert seconds("1.5") == 1.5
    assert signum_of("SIGKILL") == 9 and signum_of(15) == 15
    assert name_list(2)(["a", "b"]) == ["a", "b"]
    assert name_list()("my task 1") == ["my task 1"]  # a custom task id may hold spaces
    for bad in (lambda: as_name(""), lambda: as_name({"a": 1}), lambda: seconds(0), lambda: seconds(float("inf")),
                lambda: name_list(2)(["a", "b", "c"]), lambda: signum_of(-1),
                lambda: name_list()(["ok", "bad\n"])):  # fmt: skip
        with pytest.raises(ValueError):
            bad()


def test_large_revokes_are_summarized_for_logs() -> None:
    ids = [f"id-{n}" for n in range(100_000)]
    line = summarize(ids)
    assert line == "100000 ids: id-0, id-1, id-2, id-3, id-4, ... (99995 more)"
    assert summarize(["a", "b"]) == "a, b"


def test_disabled_commands_and_their_aliases_are_refused() -> None:
    guard = ControlGuard.of(["shutdown", "dump_active", "nonsense"], readonly=False, signing_key=None)
    shutdown, active, ping = (BUILTIN.get(name) for name in ("shutdown", "active", "ping"))
    assert guard.refusal("shutdown", shutdown) == (
        "command 'shutdown' is disabled on this worker (worker_control_disabled)"
    )
    assert guard.refusal("active", active) is not None  # disabled by its alias, asked by its name
    assert guard.refusal("ping", ping) is None
    assert guard.refusal("unknown", None) is None  # the registry's own KeyError reply
    assert guard.unknown_names(BUILTIN) == ["nonsense"]


def test_readonly_refuses_every_control_command_and_answers_inspect_ones() -> None:
    guard = ControlGuard.of((), readonly=True, signing_key=None)
    for command in BUILTIN:
        refused = guard.refusal(command.name, command)
        assert (refused is not None) == (command.kind == "control"), command.name
    assert "read-only" in str(guard.refusal("pool_grow", BUILTIN.get("pool_grow")))


def _request() -> Any:
    return request_message(ControlRequest("shutdown", {}), clock=1, timeout=1.0)


def test_signing_adds_one_header_and_nothing_without_a_key() -> None:
    message = _request()
    assert sign_message(message, None) is message and sign_message(message, "") is message
    signed = sign_message(message, "s3cret", now=1000.0)
    assert set(signed.headers) - set(message.headers) == {HEADER}
    assert signed.body == message.body
    assert signature_problem(signed, "s3cret", now=1000.0) is None
    assert ControlGuard().ignores(message) is None  # no key: nothing is checked


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m, key: m, "unsigned command"),
        (lambda m, key: sign_message(m, "other key", now=1000.0), "bad signature"),
        (lambda m, key: sign_message(m, key, now=1000.0 - MAX_AGE - 1), "old"),
        (lambda m, key: sign_message(m, key, now=float("nan")), "old"),
        (lambda m, key: replace(sign_message(m, key, now=1000.0), body=m.body + b" "), "bad signature"),
        (lambda m, key: replace(m, headers={**m.headers, HEADER: "garbage"}), "malformed"),
    ],
)
def test_unsigned_badly_signed_tampered_or_stale_commands_are_ignored(change: Any, problem: str) -> None:
    guard = ControlGuard.of((), readonly=False, signing_key="s3cret")
    message = change(_request(), "s3cret")
    reason = signature_problem(message, "s3cret", now=1000.0)
    assert reason is not None and problem in reason
    assert guard.ignores(message) is not None
