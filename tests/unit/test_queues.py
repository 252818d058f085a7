"""`Queue`/`Exchange` read kombu's arguments; every argument works or is refused by name."""

from __future__ import annotations

import re

import pytest

from celeriac import App, Exchange, Queue
from celeriac.errors import ConfigurationError
from celeriac.queues import queue_arguments, queue_table


def test_declarations_as_kombu_writes_them() -> None:
    plain, media = Queue("default"), Queue("videos", Exchange("media"), routing_key="media.video")
    assert (plain.exchange_name, plain.key, plain.bound) == ("", "default", False)
    assert (media.exchange_name, media.key, media.bound) == ("media", "media.video", True)
    assert Queue("x", "ex").exchange == Exchange("ex") and Queue("x", "ex").key == "x"
    prio = Queue("p", max_priority=10, queue_arguments={"x-message-ttl": 60000})
    assert prio.arguments == {"x-message-ttl": 60000, "x-max-priority": 10}
    assert list(queue_table([plain, media])) == ["default", "videos"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Exchange("t", type="topic"), "task_queues exchanges are direct"),
        (lambda: Queue("q", auto_delete=True), "task queues are durable, not exclusive, not auto-deleted"),
        (lambda: Queue("q", queue_arguments={"x-single-active-consumer": True}), "'x-single-active-consumer' not"),
        (lambda: Queue("q", max_priority=300), "max_priority must be 1-255"),
        (lambda: Queue(""), "Queue name must be a non-empty string"),
        (lambda: queue_table([Queue("a"), Queue("a")]), "declares queue 'a' twice"),
        (lambda: queue_table(["a"]), "holds Queue(...) declarations, not 'a'"),
        (lambda: queue_arguments({"q": Queue("q", queue_arguments={"x-message-ttl": 1})}, False), "RabbitMQ only"),
    ],
)
def test_mistakes_are_one_line(make: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        make()  # type: ignore[operator]


def test_kombu_arguments_celeriac_lacks_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match="no_ack"):
        Queue("q", no_ack=True)  # type: ignore[call-arg]


def test_a_redis_app_refuses_rabbitmq_only_arguments_before_it_connects() -> None:
    app = App("q", broker="redis://127.0.0.1:6379/0")
    app.conf.task_queues = [Queue("slow", queue_arguments={"x-message-ttl": 1000})]
    with pytest.raises(ConfigurationError, match="apply to RabbitMQ only"):
        app.make_transport()
    app.conf.task_queues = [Queue("slow", max_priority=9)]
    app.make_transport()  # priorities exist everywhere
