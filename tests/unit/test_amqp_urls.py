"""AMQP URLs are read by kombu's rules; unknown options are refused before any connection is made."""

from __future__ import annotations

import pytest

from celeriac._amqp.urls import parse_url
from celeriac.errors import ConfigurationError


@pytest.mark.parametrize(
    ("url", "host", "port", "user", "password", "vhost"),
    [
        ("amqp://", "localhost", 5672, "guest", "guest", "/"),
        ("amqp://guest:guest@localhost:5672//", "localhost", 5672, "guest", "guest", "/"),
        ("amqp://u:p@h/", "h", 5672, "u", "p", "/"),
        ("pyamqp://u:p@h:1234/v1", "h", 1234, "u", "p", "v1"),
        ("amqp://u:p%40ss@h/a%2Fb", "h", 5672, "u", "p@ss", "a/b"),
        ("amqps://h", "h", 5671, "guest", "guest", "/"),
    ],
)
def test_kombu_rules(url: str, host: str, port: int, user: str, password: str, vhost: str) -> None:
    address = parse_url(url)
    assert (address.host, address.port, address.userid, address.password, address.virtual_host) == (
        host,
        port,
        user,
        password,
        vhost,
    )
    assert address.tls == url.startswith("amqps")


def test_broker_use_ssl_turns_tls_on() -> None:
    address = parse_url("amqp://h", use_ssl={"cert_reqs": "none"})
    assert address.tls and address.port == 5671
    context = address.ssl_context()
    assert context is not None and not context.check_hostname


def test_unknown_option_is_one_line_without_password() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown option 'heartbeet'.*did you mean 'heartbeat'") as info:
        parse_url("amqp://u:secret@h//?heartbeet=3")
    assert "secret" not in str(info.value) and "\n" not in str(info.value)


def test_unknown_ssl_key_and_scheme() -> None:
    with pytest.raises(ConfigurationError, match="broker_use_ssl key 'cafile'"):
        parse_url("amqp://h", use_ssl={"cafile": "x"})
    with pytest.raises(ConfigurationError, match="not an AMQP URL"):
        parse_url("redis://h")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("heartbeat=abc", "option 'heartbeat' in AMQP URL .* must be a number of seconds, 0 or more, not 'abc'"),
        ("heartbeat=-1", "must be a number of seconds, 0 or more, not '-1'"),
        ("connect_timeout=0", "option 'connect_timeout' .* more than 0, not '0'"),
        ("connect_timeout=inf", "more than 0, not 'inf'"),
    ],
)
def test_number_options_are_checked_when_the_url_is_read(query: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        parse_url(f"amqp://u:secret@h//?{query}")
    assert "secret" not in str(info.value)
    assert parse_url("amqp://h//?heartbeat=0&connect_timeout=2.5").query == {"heartbeat": "0", "connect_timeout": "2.5"}
