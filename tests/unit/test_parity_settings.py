"""Every setting is read somewhere or refused: a walk over all of them, and the ones that used to be accepted and
never read (``task_default_exchange``, ``task_default_routing_key``, ``task_send_sent_event``, ``task_protocol``,
``enable_utc``, ``timezone``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from celeriac import App
from celeriac.app.config import zone
from celeriac.app.options import SendOptions, TaskOptions
from celeriac.errors import ConfigurationError
from celeriac.events.receiver import EventReceiver
from celeriac.settings import OPTIONS
from celeriac.testing import start_worker

SRC = Path(__file__).resolve().parents[2] / "src" / "celeriac"


def test_every_setting_is_read_outside_its_declaration() -> None:
    """A setting declared but never read is silently ignored: fail naming it (read it, or refuse its values)."""
    code = "\n".join(
        path.read_text() for path in SRC.rglob("*.py") if "settings" not in path.relative_to(SRC).parts[:1]
    )
    unread = [name for name in OPTIONS if not re.search(rf"\b{name}\b", code)]
    assert unread == [], f"settings declared but never read: {unread}"


def test_every_task_and_send_option_is_read() -> None:
    """The same walk for ``@app.task(...)`` options (read as ``task.<name>``) and ``apply_async`` options (read as
    ``options["<name>"]``/``options.get("<name>")``)."""
    code = "\n".join(path.read_text() for path in SRC.rglob("*.py") if path.name != "options.py")
    unread = [name for name in TaskOptions.__annotations__ if not re.search(rf"\.{name}\b", code)]
    unread += [name for name in SendOptions.__annotations__ if not re.search(rf"[\"']{name}[\"']", code)]
    assert unread == [], f"options declared but never read: {unread}"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"task_protocol": 1}, "task_protocol=1 is not supported: celeriac sends protocol 2"),
        ({"enable_utc": False}, "enable_utc=False is not supported"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_values_celeriac_cannot_honour_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        App("refused", **settings)


def test_a_value_set_later_is_refused_when_the_app_finalizes(sqlite_url: str) -> None:
    app = App("late", broker=sqlite_url)
    app.conf.task_protocol = 1
    with pytest.raises(ConfigurationError, match="task_protocol=1"):
        app.finalize()


def test_timezone_names_the_zone_naive_times_are_read_in() -> None:
    assert zone("UTC") is dt.UTC
    paris = zone("Europe/Paris")
    assert dt.datetime(2026, 1, 1, 12, tzinfo=paris).utcoffset() == dt.timedelta(hours=1)


async def test_default_exchange_and_routing_key_carry_the_message_to_the_default_queue(sqlite_url: str) -> None:
    app = App(
        "routing",
        broker=sqlite_url,
        task_default_queue="jobs",
        task_default_exchange="work",
        task_default_routing_key="work.default",
    )

    @app.task(bind=True)
    def where(self: Any) -> list[Any]:
        info = self.request.delivery_info
        return [info.get("exchange"), info.get("routing_key")]

    async with start_worker(app, queues=["jobs"]):
        result = await where.adelay()
        assert await result.aget(timeout=10) == ["work", "work.default"]
        # The default queue by name goes through its binding too (as Celery's declared default queue does)...
        assert await (await where.aapply_async(queue="jobs")).aget(timeout=10) == ["work", "work.default"]
        # ...and an explicit exchange and routing key win.
        explicit = await where.aapply_async(exchange="", routing_key="jobs")
        assert await explicit.aget(timeout=10) == ["", "jobs"]
    await app.aclose()


async def test_send_sent_event_publishes_task_sent(sqlite_url: str) -> None:
    app = App("sent", broker=sqlite_url, task_send_sent_event=True)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    async with app.make_transport() as transport, EventReceiver(transport) as events:
        result = await add.aapply_async((1, 2), countdown=30)
        event = await asyncio.wait_for(anext(aiter(events)), 10)
    await app.aclose()
    assert event["type"] == "task-sent"
    assert (event["uuid"], event["name"], event["queue"], event["retries"]) == (result.id, add.name, "celery", 0)
    assert event["args"] == "(1, 2)" and event["eta"] is not None and event["hostname"] == app.origin
