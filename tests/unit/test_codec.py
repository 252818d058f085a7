"""The task codec: what we encode is what Celery sends, what Celery sends decodes, and bad input only ever
raises DecodeError or ContentDisallowed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
from typing import Any

import kombu.compression
import kombu.serialization
import pytest
from celery import Celery

from celeriac.errors import ConfigurationError, ContentDisallowed, DecodeError
from celeriac.protocol import Message, TaskMessage, decode_task, encode_task, parse_datetime, serializers
from celeriac.protocol.codec import KNOWN_HEADERS

UTC = dt.UTC
JSON_ONLY = serializers.normalize_accept(["json"])
EVERYTHING = serializers.normalize_accept(["json", "msgpack", "pickle"])
TASK_ID = "cccccccc-0000-4000-8000-000000000000"

# celery-wire.md §1.6: add.apply_async((2,3), queue='capture', countdown=10, expires=600, priority=5)
CAPTURED = json.loads(r"""
{"properties": {
   "content_type": "application/json", "content_encoding": "utf-8",
   "delivery_mode": 2, "priority": 5,
   "correlation_id": "cccccccc-0000-4000-8000-000000000000",
   "reply_to": "5183efb1-b216-38fe-8b87-dc76c2284441",
   "expiration": "600000",
   "application_headers": {
     "lang": "py", "task": "tasks.add", "id": "cccccccc-0000-4000-8000-000000000000",
     "shadow": null, "eta": "2026-11-23T19:26:34.571694+00:00",
     "expires": "2026-11-23T19:36:24.571694+00:00", "group": null,
     "group_index": null, "retries": 0, "timelimit": [null, null],
     "root_id": "cccccccc-0000-4000-8000-000000000000", "parent_id": null,
     "argsrepr": "(2, 3)", "kwargsrepr": "{}", "origin": "gen12505@client-host",
     "ignore_result": false, "replaced_task_nesting": 0,
     "stamped_headers": null, "stamps": {}}},
 "body": "[[2, 3], {}, {\"callbacks\": null, \"errbacks\": null, \"chain\": null, \"chord\": null}]"}
""")


def captured_task() -> TaskMessage:
    sent = dt.datetime(2026, 11, 23, 19, 26, 24, 571694, tzinfo=UTC)
    return TaskMessage(
        id=TASK_ID,
        task="tasks.add",
        args=(2, 3),
        eta=sent + dt.timedelta(seconds=10),
        expires=sent + dt.timedelta(seconds=600),
        origin="gen12505@client-host",
        ignore_result=False,
        reply_to="5183efb1-b216-38fe-8b87-dc76c2284441",
        priority=5,
    )


def test_encoding_reproduces_the_captured_celery_message() -> None:
    sent = dt.datetime(2026, 11, 23, 19, 26, 24, 571694, tzinfo=UTC)
    message = encode_task(captured_task(), now=sent)
    expected = CAPTURED["properties"]
    headers = expected["application_headers"]
    assert dict(message.headers) == headers
    assert list(message.headers) == list(headers) == list(KNOWN_HEADERS)  # Celery's key order
    assert message.content_type == expected["content_type"]
    assert message.content_encoding == expected["content_encoding"]
    props = {k: v for k, v in expected.items() if k not in ("content_type", "content_encoding", "application_headers")}
    assert dict(message.properties) == props
    assert message.body == CAPTURED["body"].encode()


def test_encode_defaults() -> None:
    message = encode_task(TaskMessage(id="i", task="t", args=("x" * 2000,), kwargs={"k": 1}))
    assert message.headers["root_id"] == "i"  # a top-level call is its own root
    assert message.headers["argsrepr"] == repr(("x" * 2000,))[:1024]
    assert len(message.headers["argsrepr"]) == 1024
    assert message.headers["kwargsrepr"] == "{'k': 1}"
    assert message.headers["ignore_result"] is None  # "use the task's setting", as Celery's worker reads null
    assert message.headers["timelimit"] == [None, None]
    assert message.properties == {"correlation_id": "i", "reply_to": "", "delivery_mode": 2, "priority": 0}
    assert json.loads(message.body) == [
        ["x" * 2000],
        {"k": 1},
        {"callbacks": None, "errbacks": None, "chain": None, "chord": None},
    ]


def test_extra_headers_go_to_the_top_level_but_never_replace_fields() -> None:
    task = TaskMessage(id="i", task="t", extra_headers={"custom_hdr": "x", "id": "forged", "compression": "zip"})
    message = encode_task(task)
    assert message.headers["custom_hdr"] == "x"
    assert message.headers["id"] == "i"
    assert "compression" not in message.headers
    assert decode_task(message, JSON_ONLY).extra_headers == {"custom_hdr": "x"}


def rich_task() -> TaskMessage:
    return TaskMessage(
        id="a1",
        task="tasks.mul",
        args=(1, "two", [3], {"four": 4}),
        kwargs={"x": dt.date(2024, 1, 2), "y": b"\xff"},
        embed={
            "callbacks": [{"task": "cb", "args": [], "kwargs": {}, "options": {}}],
            "errbacks": None,
            "chain": [{"task": "next", "args": [2], "kwargs": {}, "options": {}}],
            "chord": {"task": "body", "args": [], "kwargs": {}, "options": {"group_id": "g"}},
        },
        shadow="nice name",
        eta=dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        expires=dt.datetime(2030, 1, 2, tzinfo=UTC),
        group="g",
        group_index=3,
        retries=2,
        timelimit=(60, 50.5),
        root_id="r",
        parent_id="p",
        argsrepr="<args>",
        kwargsrepr="<kwargs>",
        origin="gen1@host",
        ignore_result=True,
        replaced_task_nesting=1,
        stamped_headers=["mystamp"],
        stamps={"mystamp": "v1"},
        extra_headers={"custom_hdr": "x", "redelivered": True},
        correlation_id="a1",
        reply_to="reply-queue",
        priority=7,
        delivery_mode=1,
    )


@pytest.mark.parametrize("serializer", ["json", "msgpack", "pickle"])
def test_round_trip_keeps_every_field(serializer: str) -> None:
    task = rich_task()
    if serializer == "msgpack":  # msgpack has no date type: keep the arguments to what it can carry
        task = dataclasses.replace(task, kwargs={"x": "2024-01-02", "y": b"\xff"})
    assert decode_task(encode_task(task, serializer), EVERYTHING) == task


@pytest.mark.parametrize("compression", ["zlib", "bz2", "lzma"])
def test_compressed_bodies_are_kombu_compatible(compression: str) -> None:
    message = encode_task(rich_task(), compression=compression)
    mime = {"zlib": "application/x-gzip", "bz2": "application/x-bz2", "lzma": "application/x-lzma"}
    assert message.headers["compression"] == mime[compression]
    plain = encode_task(rich_task())
    assert kombu.compression.decompress(message.body, message.headers["compression"]) == plain.body
    assert decode_task(message, JSON_ONLY) == rich_task()
    # and a body kombu compressed decodes too
    body, content = kombu.compression.compress(plain.body, {"bz2": "bzip2"}.get(compression, compression))
    theirs = dataclasses.replace(plain, body=body, headers={**plain.headers, "compression": content})
    assert decode_task(theirs, JSON_ONLY) == rich_task()


def test_unknown_compression_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown compression 'zlip'; did you mean 'zlib'"):
        encode_task(rich_task(), compression="zlip")


@pytest.mark.parametrize(
    ("compression", "body"),
    [("application/x-gzip", b"not zlib"), ("application/x-bz2", b"nope"), ("application/x-lzma", b"no"),
     ("application/x-brotli", b"\x00"), (7, b"")],
)  # fmt: skip
def test_bad_compression_is_a_decode_error(compression: Any, body: bytes) -> None:
    message = Message(body=body, headers={"task": "t", "id": "i", "compression": compression})
    with pytest.raises(DecodeError, match="compress"):
        decode_task(message, JSON_ONLY)


@pytest.mark.parametrize(("key", "value"), [("id", "ab\udcff"), ("task", "tasks.\ud800add")])
def test_an_id_or_task_name_that_is_not_valid_unicode_is_a_decode_error(key: str, value: str) -> None:
    headers = {"lang": "py", "task": "t", "id": "i", key: value}
    with pytest.raises(DecodeError, match=f"'{key}' is not valid Unicode"):
        decode_task(Message(body=b"[[], {}, {}]", headers=headers), JSON_ONLY)
    headers[key] = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace") + "é"  # non-ASCII, valid
    assert getattr(decode_task(Message(body=b"[[], {}, {}]", headers=headers), JSON_ONLY), key) == headers[key]


# -- messages built by real Celery ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def celery_app() -> Celery:
    return Celery("interop", broker="memory://", backend="cache+memory://", set_as_current=False)


def from_celery(built: Any, serializer: str = "json", **extra_headers: Any) -> Message:
    """A `Message` as a transport would hand over what Celery's producer publishes for ``built``."""
    content_type, encoding, body = kombu.serialization.dumps(built.body, serializer=serializer)
    return Message(
        body=body.encode(encoding) if isinstance(body, str) else body,
        content_type=content_type,
        content_encoding=encoding,
        headers={**built.headers, **extra_headers},
        properties={**built.properties, "delivery_mode": 2, "priority": 0},
    )


@pytest.mark.parametrize("serializer", ["json", "msgpack", "pickle"])
def test_decodes_a_celery_protocol_2_message(celery_app: Celery, serializer: str) -> None:
    built = celery_app.amqp.as_task_v2(
        TASK_ID, "tasks.add", args=(2, 3), kwargs={"z": 1}, countdown=10, expires=600,
        time_limit=60, soft_time_limit=50, group_id="g", group_index=1, root_id="r", parent_id="p",
        origin="gen1@client", reply_to="rq", shadow="adder", stamped_headers=["mystamp"], mystamp="v1",
        callbacks=[{"task": "cb"}], chain=[{"task": "c2"}, {"task": "c1"}], retries=3,
    )  # fmt: skip
    task = decode_task(from_celery(built, serializer, custom_hdr="x"), EVERYTHING)
    assert task.id == TASK_ID and task.task == "tasks.add" and task.name == "adder"
    assert task.args == (2, 3) and task.kwargs == {"z": 1}
    assert task.embed == {"callbacks": [{"task": "cb"}], "errbacks": None,
                          "chain": [{"task": "c2"}, {"task": "c1"}], "chord": None}  # fmt: skip
    assert task.eta == dt.datetime.fromisoformat(built.headers["eta"]) and task.eta.tzinfo is not None
    assert task.expires == dt.datetime.fromisoformat(built.headers["expires"])
    assert (task.expires - task.eta).total_seconds() == pytest.approx(590, abs=1)
    assert task.timelimit == (60, 50)
    assert (task.group, task.group_index, task.retries) == ("g", 1, 3)
    assert (task.root_id, task.parent_id, task.origin) == ("r", "p", "gen1@client")
    assert (task.argsrepr, task.kwargsrepr) == ("(2, 3)", "{'z': 1}")
    assert task.ignore_result is False
    assert (task.stamped_headers, task.stamps) == (["mystamp"], {"mystamp": "v1"})
    assert task.extra_headers == {"custom_hdr": "x"}
    assert (task.correlation_id, task.reply_to, task.priority, task.delivery_mode) == (TASK_ID, "rq", 0, 2)


def test_what_we_encode_has_the_shape_celery_builds(celery_app: Celery) -> None:
    built = celery_app.amqp.as_task_v2(TASK_ID, "tasks.add", args=(2, 3), kwargs={}, origin="o")
    ours = encode_task(TaskMessage(id=TASK_ID, task="tasks.add", args=(2, 3), origin="o", ignore_result=False))
    assert dict(ours.headers) == built.headers
    assert list(ours.headers) == list(built.headers)
    body = kombu.serialization.loads(ours.body, ours.content_type, ours.content_encoding, accept=[ours.content_type])
    assert body == [list(built.body[0]), built.body[1], built.body[2]]


def test_decodes_celery_protocol_1(celery_app: Celery) -> None:
    built = celery_app.amqp.as_task_v1(
        "p1", "tasks.add", args=(1, 2), kwargs={"k": "v"}, countdown=5, group_id="gg", time_limit=3
    )
    task = decode_task(from_celery(built), JSON_ONLY)
    assert (task.id, task.task, task.args, task.kwargs) == ("p1", "tasks.add", (1, 2), {"k": "v"})
    assert task.group == "gg" and task.timelimit == (3, None)
    assert task.eta == dt.datetime.fromisoformat(built.body["eta"])
    assert task.embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    assert (task.argsrepr, task.kwargsrepr) == ("(1, 2)", "{'k': 'v'}")
    assert task.root_id is None and task.stamps == {}


@pytest.mark.parametrize(("utc", "expected_tz"), [(True, UTC), (False, dt.timezone(dt.timedelta(hours=2)))])
def test_protocol_1_utc_flag_decides_naive_times(utc: bool, expected_tz: dt.tzinfo) -> None:
    body = {"task": "t", "id": "i", "args": [], "kwargs": {}, "eta": "2030-01-01T10:00:00", "utc": utc,
            "taskset": "ts", "group": None, "chord": {"task": "body"}}  # fmt: skip
    message = Message(body=json.dumps(body).encode(), headers={})
    task = decode_task(message, JSON_ONLY, tz=dt.timezone(dt.timedelta(hours=2)))
    assert task.eta == dt.datetime(2030, 1, 1, 10, tzinfo=expected_tz)
    assert task.group == "ts"
    assert task.embed["chord"] == {"task": "body"}


def test_decodes_hybrid_messages() -> None:
    headers = {"task": "t", "id": "i", "retries": 2, "custom": 1, "eta": None}
    body = {"args": [1], "kwargs": {"a": 1}, "callbacks": [{"task": "cb"}], "eta": "2030-01-01T00:00:00+00:00"}
    task = decode_task(Message(body=json.dumps(body).encode(), headers=headers), JSON_ONLY)
    assert (task.id, task.task, task.args, task.kwargs, task.retries) == ("i", "t", (1,), {"a": 1}, 2)
    assert task.embed["callbacks"] == [{"task": "cb"}]
    assert task.eta == dt.datetime(2030, 1, 1, tzinfo=UTC)  # the body fills what the headers lack
    assert task.extra_headers == {"custom": 1}


def test_naive_times_are_read_in_the_given_zone() -> None:
    zone = dt.timezone(dt.timedelta(hours=-3))
    message = encode_task(TaskMessage(id="i", task="t"))
    message = dataclasses.replace(message, headers={**message.headers, "eta": "2030-01-01T10:00:00"})
    assert decode_task(message, JSON_ONLY, tz=zone).eta == dt.datetime(2030, 1, 1, 10, tzinfo=zone)
    assert decode_task(message, JSON_ONLY).eta == dt.datetime(2030, 1, 1, 10, tzinfo=UTC)


def test_parse_datetime() -> None:
    assert parse_datetime("2024-01-02T03:04:05Z") == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)  # kombu <= 5.2
    assert parse_datetime(dt.datetime(2024, 1, 2)) == dt.datetime(2024, 1, 2, tzinfo=UTC)
    with pytest.raises(DecodeError, match="bad ISO 8601"):
        parse_datetime("tomorrow")
    with pytest.raises(DecodeError):
        parse_datetime(12)  # type: ignore[arg-type]


def test_pickle_body_is_refused_unless_accepted() -> None:
    message = encode_task(rich_task(), "pickle")
    with pytest.raises(ContentDisallowed):
        decode_task(message, JSON_ONLY)


# -- bad input ------------------------------------------------------------------------------------------

GOOD_HEADERS = dict(encode_task(TaskMessage(id="i", task="t")).headers)
GOOD_BODY = [[1], {"a": 1}, None]


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({**GOOD_HEADERS, "id": ""}, GOOD_BODY, "'id' must be a non-empty string"),
        ({**GOOD_HEADERS, "id": None}, GOOD_BODY, "'id' must be a non-empty string"),
        ({**GOOD_HEADERS, "task": 5}, GOOD_BODY, "'task' must be a non-empty string"),
        (GOOD_HEADERS, [{"a": 1}, {}, None], "args must be a list"),
        (GOOD_HEADERS, [[], [], None], "kwargs must be an object"),
        (GOOD_HEADERS, [[], {}, []], "embed must be an object"),
        (GOOD_HEADERS, [[], {}, {"chain": {"task": "x"}}], "embed 'chain'"),
        (GOOD_HEADERS, [[], {}, {"chord": []}], "embed 'chord'"),
        (GOOD_HEADERS, [[], {}], r"\[args, kwargs, embed\]"),
        (GOOD_HEADERS, "just a string", r"\[args, kwargs, embed\]"),
        ({**GOOD_HEADERS, "eta": "soon"}, GOOD_BODY, "'eta': bad ISO 8601"),
        ({**GOOD_HEADERS, "expires": 1700000000}, GOOD_BODY, "'expires'"),
        ({**GOOD_HEADERS, "retries": "1"}, GOOD_BODY, "'retries' must be an integer"),
        ({**GOOD_HEADERS, "retries": True}, GOOD_BODY, "'retries' must be an integer"),
        ({**GOOD_HEADERS, "group_index": 1.5}, GOOD_BODY, "'group_index'"),
        ({**GOOD_HEADERS, "timelimit": [1]}, GOOD_BODY, "'timelimit' must be"),
        ({**GOOD_HEADERS, "timelimit": ["1", None]}, GOOD_BODY, "'timelimit' must hold numbers"),
        ({**GOOD_HEADERS, "ignore_result": "yes"}, GOOD_BODY, "'ignore_result'"),
        ({**GOOD_HEADERS, "stamped_headers": "s"}, GOOD_BODY, "'stamped_headers'"),
        ({**GOOD_HEADERS, "stamps": []}, GOOD_BODY, "'stamps'"),
        ({**GOOD_HEADERS, "shadow": 1}, GOOD_BODY, "'shadow' must be a string"),
        ({}, GOOD_BODY, "not a task message"),
        ({}, {"id": "i"}, "not a task message"),
        ({}, {"task": "t", "id": "i", "args": "oops"}, "args must be a list"),
    ],
)
def test_wrong_shapes_raise_decode_error_naming_the_problem(headers: Any, body: Any, reason: str) -> None:
    message = Message(body=json.dumps(body).encode(), headers=headers)
    with pytest.raises(DecodeError, match=reason):
        decode_task(message, JSON_ONLY)


def test_non_string_kwargs_keys_are_refused() -> None:
    content_type, encoding, body = serializers.dumps([[], {1: "x"}, None], "pickle")
    message = Message(body=body, content_type=content_type, content_encoding=encoding, headers=GOOD_HEADERS)
    with pytest.raises(DecodeError, match="kwargs must be an object with string keys"):
        decode_task(message, EVERYTHING)


def test_garbage_body_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="invalid JSON"):
        decode_task(Message(body=b"\x00garbage", headers=GOOD_HEADERS), JSON_ONLY)


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "float", "str", "none", "bool", "bigint"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "int":
        return rng.randint(-3, 3)
    if kind == "bigint":
        return rng.randint(-(2**70), 2**70)
    if kind == "float":
        return rng.choice([0.5, -1e308, float("inf"), float("nan")])
    if kind == "str":
        return rng.choice(["", "x", "2030-01-01T00:00:00", "\udcff", "é", "application/x-gzip"])
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice([*KNOWN_HEADERS, "args", "kwargs", "utc", "taskset", "callbacks", "chord", "x"]):
            _random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}  # fmt: skip


def _random_message(rng: random.Random) -> Message:
    base = dataclasses.replace(rich_task(), kwargs={"x": "2024-01-02"})  # what all three serializers carry
    valid = encode_task(base, rng.choice(["json", "msgpack", "pickle"]))
    headers = dict(valid.headers) if rng.random() < 0.7 else {}
    for _ in range(rng.randint(0, 3)):  # damage a few headers
        headers[rng.choice([*KNOWN_HEADERS, "compression", "x"])] = _random_value(rng)
    choice = rng.random()
    if choice < 0.3:
        body = valid.body
    elif choice < 0.5:  # flip a few bytes of a valid body
        raw = bytearray(valid.body)
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        body = bytes(raw)
    elif choice < 0.7:
        body = rng.randbytes(rng.randint(0, 40))
    else:
        serializer = rng.choice(["json", "msgpack"])
        try:
            body = serializers.dumps(_random_value(rng), serializer)[2]
        except (TypeError, ValueError, OverflowError):
            body = b"[]"
    content_type = rng.choice([valid.content_type, "application/json", None, "application/x-python-serialize"])
    properties = dict(valid.properties)
    if rng.random() < 0.3:
        properties[rng.choice(["priority", "reply_to", "correlation_id", "delivery_mode"])] = _random_value(rng)
    encoding = valid.content_encoding
    if rng.random() < 0.2:
        encoding = rng.choice(["binary", "utf-16", "no-such-codec", ""])
    return Message(
        body=body, content_type=content_type or "", content_encoding=encoding,
        headers=headers, properties=properties,
    )  # fmt: skip


def test_fuzz_only_decode_errors_escape() -> None:
    rng = random.Random(20240601)
    outcomes = {"ok": 0, "DecodeError": 0, "ContentDisallowed": 0}
    accept = serializers.normalize_accept(["json", "msgpack"])
    for _ in range(4000):
        message = _random_message(rng)
        try:
            task = decode_task(message, accept)
        except (DecodeError, ContentDisallowed) as exc:
            outcomes[type(exc).__name__] += 1
            continue
        outcomes["ok"] += 1
        # whatever was accepted has the declared types
        assert isinstance(task.id, str) and task.id and isinstance(task.task, str) and task.task
        assert isinstance(task.args, tuple) and isinstance(task.kwargs, dict)
        assert all(isinstance(k, str) for k in task.kwargs)
        assert task.eta is None or task.eta.tzinfo is not None
        assert isinstance(task.retries, int) and isinstance(task.argsrepr, str)
    assert all(count > 50 for count in outcomes.values()), outcomes  # every path was exercised


def test_each_field_of_an_ordinary_message_is_checked_on_the_one_decode_path() -> None:
    """One header or property of an ordinary message set to anything: either DecodeError names it, or the
    message decodes as the unchanged one did except in that field. (There is one decode path; before, a common
    case shortcut was checked against the careful path here.)"""
    rng = random.Random(20261123)
    accept = serializers.normalize_accept(["json", "msgpack"])
    decoded = 0
    for n in range(1000):
        plain = encode_task(TaskMessage(id=f"i{n}", task="t", args=(n,), kwargs={"k": n}, shadow="s", retries=2))
        baseline = decode_task(plain, accept)
        headers, properties = dict(plain.headers), dict(plain.properties)
        in_headers = rng.random() < 0.7
        key = rng.choice([*KNOWN_HEADERS, "x"] if in_headers else ["priority", "reply_to", "delivery_mode"])
        (headers if in_headers else properties)[key] = _random_value(rng)
        try:
            task = decode_task(dataclasses.replace(plain, headers=headers, properties=properties), accept)
        except DecodeError as exc:
            assert repr(key) in exc.reason, (key, exc.reason)
            continue
        decoded += 1
        field = "extra_headers" if key == "x" else key
        assert dataclasses.replace(task, **{field: getattr(baseline, field)}) == baseline, key
    assert decoded > 300
