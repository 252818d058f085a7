"""The AMQP transport reads its settings once and refuses what it cannot honour, before any connection."""

from __future__ import annotations

import pytest

from celeriac.errors import ConfigurationError
from celeriac.transports import from_url
from celeriac.transports.amqp.options import AMQPOptions
from celeriac.transports.amqp.topology import Topology
from celeriac.transports.base import TransportOptions


def options(**settings: object) -> AMQPOptions:
    return AMQPOptions.from_options(TransportOptions(broker_settings=dict(settings)))


def test_defaults_are_celerys() -> None:
    found = options()
    assert (found.heartbeat, found.queue_type, found.control_expires, found.event_ttl) == (120.0, "classic", 10.0, 5.0)
    topology = Topology(found)
    assert topology.queue("celery").arguments == {}
    assert topology.queue("w1@h.celery.pidbox").arguments == {"x-expires": 10000, "x-message-ttl": 300000}
    assert topology.exchange("celery.pidbox").type == "fanout" and not topology.exchange("celery.pidbox").durable
    assert topology.exchange("reply.celery.pidbox").type == "direct"


def test_quorum_queue_arguments() -> None:
    spec = Topology(options(task_default_queue_type="quorum", task_queue_delivery_limit=3)).queue("q")
    assert spec.arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 3,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "q.dead",
    }


@pytest.mark.parametrize(
    ("given", "refusal"),
    [
        ({"extra": {"visiblity": 1}}, "unknown broker_transport_options key 'visiblity'"),
        ({"extra": {"confirm_publish": False}}, "confirm_publish cannot be turned off"),
        ({"broker_settings": {"task_default_queue_type": "stream"}}, "must be one of classic, quorum"),
        (
            {"broker_settings": {"task_default_queue_type": "quorum", "task_queue_max_priority": 9}},
            "quorum queues have no priorities",
        ),
    ],
)
def test_refusals_are_one_line(given: dict[str, dict[str, object]], refusal: str) -> None:
    with pytest.raises(ConfigurationError, match=refusal):
        from_url("amqp://guest:guest@localhost//", TransportOptions(**given))  # type: ignore[arg-type]


def test_address_reads_the_vhost_as_kombu() -> None:
    address = from_url("amqp://u:secret@rabbit:5673/a%2Fb").address()
    assert (address.hostname, address.port, address.userid, address.virtual_host) == ("rabbit", 5673, "u", "a/b")
    assert from_url("amqps://h//").address().ssl
    assert "secret" not in from_url("amqp://u:secret@rabbit//").url
