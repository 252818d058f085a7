"""Without a broker: --autoscale values (Celery's format) and the health server's request handling."""

from __future__ import annotations

import asyncio

import pytest

from celeriac.errors import ConfigurationError
from celeriac.worker.autoscale import autoscale_bounds, parse_autoscale
from celeriac.worker.health import _read_request


@pytest.mark.parametrize(
    ("value", "expected"), [("10,3", (10, 3)), ("3,10", (10, 3)), ("4", (4, 0)), (" 6 , 2 ", (6, 2)), ("1,1", (1, 1))]
)
def test_autoscale_values_as_celery_reads_them(value: str, expected: tuple[int, int]) -> None:
    assert parse_autoscale(value, "--autoscale") == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("ten", "as integers"),
        ("1,2,3", "one or two integers"),
        ("0", "MAX must be at least 1"),
        ("4,-1", "MIN at least 0"),
        ("", "as integers"),
        ("celery.worker.autoscale:Autoscaler", "not a class path"),
    ],
)
def test_bad_autoscale_values_are_one_line_errors_naming_the_option(value: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_autoscale(value, "--autoscale")
    message = str(caught.value)
    assert message.startswith("--autoscale") and words in message and "\n" not in message


def test_the_argument_wins_over_the_setting() -> None:
    assert autoscale_bounds(None, None) is None
    assert autoscale_bounds(None, "5,1") == (5, 1)
    assert autoscale_bounds("8,2", "5,1") == (8, 2)
    assert autoscale_bounds((2, 7), None) == (7, 2)
    with pytest.raises(ConfigurationError, match=r"^worker_autoscaler"):
        autoscale_bounds(None, "x")


async def read(raw: bytes) -> tuple[str, str]:
    reader = asyncio.StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    return await _read_request(reader)


async def test_health_requests_are_read_and_bad_ones_refused() -> None:
    assert await read(b"GET /readyz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") == ("GET", "/readyz")
    assert await read(b"head /healthz HTTP/1.0\r\n\r\n") == ("HEAD", "/healthz")
    for bad in (b"\x16\x03\x01 tls", b"GET /healthz\r\n\r\n", b""):
        with pytest.raises(ValueError):
            await read(bad)
    with pytest.raises(ValueError, match="too many header lines"):
        await read(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n")
