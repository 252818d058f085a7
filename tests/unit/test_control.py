"""Remote control without a broker: the command registry, request selection and parsing, built-in replies."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from celeriac import App, __version__
from celeriac.control.arguments import Arg, as_bool, as_int, as_str_list
from celeriac.control.builtin import BUILTINS, with_builtins
from celeriac.control.commands import NO_REPLY, CommandRegistry, Kind
from celeriac.control.messages import ControlRequest, parse_request, reply_message, request_message
from celeriac.control.node import TaskTable
from celeriac.errors import ProtocolError
from celeriac.protocol.clock import LamportClock
from celeriac.protocol.message import Message
from celeriac.worker.stats import broker_info


class FakeNode:
    """A ControlNode with recorded calls (the worker's real one is exercised by the integration tests)."""

    def __init__(self) -> None:
        self.hostname = "w1@host"
        self.app = App("fake", broker="sqlite:///unused.db")
        self.clock = LamportClock(10)
        self._revoked: list[str] = []
        self.calls: list[tuple[Any, ...]] = []

        @self.app.task(name="fake.add", rate_limit="5/s")
        def add(x: int, y: int) -> int:
            return x + y

        @self.app.task(name="fake.mul")
        def mul(x: int, y: int) -> int:
            return x * y

    version = __version__

    @property
    def app_name(self) -> str:
        return self.app.main or "__main__"

    @property
    def tasks(self) -> TaskTable:
        return self.app.tasks

    def settings(self, with_defaults: bool) -> Mapping[str, Any]:
        return self.app.conf.as_dict() if with_defaults else self.app.conf.changes()

    def requests(self, kind: str) -> list[Any]:
        return []

    def revoked(self) -> list[str]:
        return list(self._revoked)

    def merge_revoked(self, ids: Iterable[str]) -> None:
        self._revoked += [i for i in ids if i not in self._revoked]

    async def revoke(self, ids: Sequence[str], terminate: bool, signum: int) -> list[str]:
        self.calls.append(("revoke", list(ids), terminate, signum))
        self.merge_revoked(ids)
        return [i for i in ids if i == "running"] if terminate else []

    def set_rate_limit(self, task_name: str, rate: str | None) -> None:
        if rate == "bad":
            raise ValueError("'bad'")
        self.calls.append(("rate_limit", task_name, rate))

    def set_time_limit(self, task_name: str, soft: float | None, hard: float | None) -> None:
        self.calls.append(("time_limit", task_name, soft, hard))

    def set_task_events(self, enabled: bool) -> bool | None:
        return enabled

    def resize_pool(self, delta: int) -> None:
        self.calls.append(("resize", delta))

    def autoscale(self, max_concurrency: int | None, min_concurrency: int | None) -> tuple[int, int]:
        raise ValueError("Autoscale not enabled")

    def shutdown(self, reason: str | None) -> None:
        self.calls.append(("shutdown", reason))


BUILTIN = with_builtins()


async def ask(node: FakeNode, method: str, **arguments: Any) -> Any:
    return await BUILTIN.dispatch(node, method, arguments)


def test_coercers() -> None:
    assert as_bool(1) is True and as_bool("false") is False and as_bool("yes") is True
    assert as_int("3") == 3 and as_int(2.0) == 2
    assert as_str_list("a") == ["a"] and as_str_list(["a", "b"]) == ["a", "b"]
    with pytest.raises(ValueError):
        as_bool("maybe")


async def test_registry_errors_are_replies_never_raised() -> None:
    registry = CommandRegistry()

    @registry.register(Kind.CONTROL, Arg("n", as_int), aliases=("boom_alias",))
    async def boom(node: Any, n: int = 0) -> Any:
        raise RuntimeError(f"bad {n}")

    assert await registry.dispatch(None, "x", {}) == {"error": "KeyError('x')"}
    assert await registry.dispatch(None, "boom_alias", {"n": "4", "extra": 1}) == {"error": "RuntimeError('bad 4')"}
    assert await registry.dispatch(None, "boom", {"n": "four"}) == {
        "error": "ValueError(\"invalid literal for int() with base 10: 'four'\")"
    }
    assert registry.names() == ["boom"]


def test_command_line_words_follow_the_declared_arguments() -> None:
    rate = BUILTIN.get("rate_limit")
    revoke = BUILTIN.get("revoke")
    query = BUILTIN.get("query_task")
    assert rate is not None and revoke is not None and query is not None
    assert rate.from_words(["tasks.add", "10/m"]) == {"task_name": "tasks.add", "rate_limit": "10/m"}
    assert revoke.from_words(["id1", "id2"]) == {"task_id": ["id1", "id2"]}
    assert query.from_words(["a", "b"]) == {"ids": ["a", "b"]}
    with pytest.raises(ValueError, match="too many arguments"):
        rate.from_words(["a", "b", "c"])
    assert "hello" not in BUILTIN.names() and BUILTIN.get("dump_active") is BUILTIN.get("active")


def test_selection_by_destination_glob_and_pcre() -> None:
    assert ControlRequest("ping", {}).selects("w1@host")
    assert ControlRequest("ping", {}, destination=("w1@host",)).selects("w1@host")
    assert not ControlRequest("ping", {}, destination=("w2@host",)).selects("w1@host")
    assert ControlRequest("ping", {}, pattern="w*@host", matcher="glob").selects("w1@host")
    assert not ControlRequest("ping", {}, pattern="x*", matcher="glob").selects("w1@host")
    assert ControlRequest("ping", {}, pattern="w.@", matcher="pcre").selects("w1@host")
    assert not ControlRequest("ping", {}, pattern="(", matcher="pcre").selects("w1@host")
    assert not ControlRequest("ping", {}, pattern="w*", matcher="regexp?").selects("w1@host")


def test_request_round_trip_and_wire_shape() -> None:
    request = ControlRequest(
        "ping", {"a": 1}, ("w1@h",), ticket="T-1", reply_exchange="reply.celery.pidbox", reply_routing_key="oid"
    )
    message = request_message(request, clock=7, timeout=1.0)
    body = json.loads(message.body)
    assert body == {
        "method": "ping",
        "arguments": {"a": 1},
        "destination": ["w1@h"],
        "pattern": None,
        "matcher": None,
        "ticket": "T-1",
        "reply_to": {"exchange": "reply.celery.pidbox", "routing_key": "oid"},
    }
    assert message.headers["clock"] == 7 and message.properties["delivery_mode"] == 2
    assert parse_request(message) == ControlRequest(
        "ping", {"a": 1}, ("w1@h",), None, None, "T-1", "reply.celery.pidbox", "oid", 7
    )
    cast = request_message(ControlRequest("heartbeat", {}), clock=1, timeout=None)
    assert "ticket" not in json.loads(cast.body) and not parse_request(cast).wants_reply
    reply = reply_message("w1@h", {"ok": "pong"}, "T-1", 3)
    assert json.loads(reply.body) == {"w1@h": {"ok": "pong"}} and dict(reply.headers) == {"ticket": "T-1", "clock": 3}


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"arguments": {}}',
        b'{"method": "ping", "arguments": [1]}',
        b'{"method": "ping", "destination": "w1"}',
    ],
)
def test_malformed_requests_raise_protocol_error(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_request(Message(body=body))


async def test_inspect_replies() -> None:
    node = FakeNode()
    assert await ask(node, "ping") == {"ok": "pong"}
    assert await ask(node, "clock") == {"clock": 10}
    assert await ask(node, "registered") == ["fake.add [rate_limit=5/s]", "fake.mul"]
    assert await ask(node, "registered", taskinfoitems=["acks_late", "name"]) == [
        "fake.add [name=fake.add]",
        "fake.mul [name=fake.mul]",
    ]
    assert await ask(node, "active") == [] and await ask(node, "query_task", ids=["x"]) == {}
    assert (await ask(node, "conf"))["broker_url"] == "sqlite:///unused.db"
    assert (await ask(node, "report"))["ok"].startswith("\nsoftware -> celeriac:")


async def test_hello_merges_list_or_dict_and_ignores_itself() -> None:
    node = FakeNode()
    assert await ask(node, "hello", from_node="w1@host", revoked=["x"]) is None
    assert await ask(node, "hello", from_node="w2@host", revoked=["a"]) == {"revoked": ["a"], "clock": 11}
    reply = await ask(node, "hello", from_node="w3@host", revoked={"b": [1.0, "b"], "c": 2.0})
    assert reply == {"revoked": ["a", "b", "c"], "clock": 12}


async def test_control_replies() -> None:
    node = FakeNode()
    assert await ask(node, "revoke", task_id="abc") == {"ok": "tasks {'abc'} flagged as revoked"}
    assert await ask(node, "revoke", task_id=["running"], terminate=1, signal="SIGKILL") == {"ok": "terminate: running"}
    assert await ask(node, "revoke", task_id=["idle"], terminate=True) == {"ok": "terminate: tasks unknown"}
    assert ("revoke", ["running"], True, 9) in node.calls
    name = "fake.add"
    assert await ask(node, "rate_limit", task_name=name, rate_limit="10/m") == {"ok": "new rate limit set successfully"}
    assert await ask(node, "rate_limit", task_name=name, rate_limit=None) == {"ok": "rate limit disabled successfully"}
    assert await ask(node, "rate_limit", task_name=name, rate_limit="bad") == {
        "error": "Invalid rate limit string: 'bad'"
    }
    assert await ask(node, "rate_limit", task_name="nope", rate_limit="1/s") == {"error": "unknown task"}
    assert await ask(node, "time_limit", task_name=name, soft=1, hard="2") == {"ok": "time limits set successfully"}
    assert ("time_limit", name, 1.0, 2.0) in node.calls
    assert await ask(node, "enable_events") == {"ok": "task events enabled"}
    assert await ask(node, "disable_events") == {"ok": "task events already disabled"}
    assert await ask(node, "pool_grow", n=2) == {"ok": "pool will grow"}
    assert await ask(node, "pool_shrink") == {"ok": "pool will shrink"}
    assert ("resize", 2) in node.calls and ("resize", -1) in node.calls
    assert await ask(node, "autoscale", max=4, min=1) == {"error": "ValueError('Autoscale not enabled')"}
    assert await ask(node, "shutdown") is NO_REPLY and ("shutdown", None) in node.calls


def test_each_registry_is_its_own() -> None:
    """The built-ins are copied into every new registry: a command one app adds never reaches another."""
    mine, other = with_builtins(), with_builtins()

    @mine.register(Kind.INSPECT)
    async def extra(node: Any) -> Any:
        return {"ok": "extra"}

    assert mine.get("extra") is not None and other.get("extra") is None
    assert [c.name for c in other] == sorted(c.name for c in BUILTINS)


def test_every_builtin_declares_its_reply_type() -> None:
    """Each handler's return annotation resolves to its reply shape (`celeriac.control.replies`), never ``Any``,
    so a reader (the dashboard) can take the shape from the command itself."""
    for command in BUILTINS:
        shape = typing.get_type_hints(command.handler)["return"]
        assert shape is not Any, command.name


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://", ("localhost", None, "0", None, False, "redis")),
        ("rediss://u:pw@h:6380/2", ("h", "u", "2", 6380, True, "rediss")),
        ("redis+socket:///tmp/r.sock", ("localhost", None, "tmp/r.sock", None, False, "redis+socket")),
        ("sqlite:///./x.db", (None, None, "./x.db", None, False, "sqlite")),
    ],
)
def test_stats_broker_part_comes_from_the_transport(url: str, expected: tuple[Any, ...]) -> None:
    """``stats``' ``broker`` dict, as the worker answered it when it read the URL itself (no password)."""
    transport = App("t", broker=url).make_transport()
    info = broker_info(transport.address(), {"password": "secret"})
    keys = ("hostname", "userid", "virtual_host", "port", "ssl", "transport")
    assert tuple(dict(info)[key] for key in keys) == expected
    assert info["transport_options"] == {"password": "********"}
