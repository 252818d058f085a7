"""Redis URLs and connection options: an unknown or malformed option is a one-line `ConfigurationError` naming it,
raised before any connection is made (`celeriac._redis.urls`, `celeriac.transports.redis.options`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from celeriac._redis.client import make_client
from celeriac._redis.urls import check_url, redis_py_url
from celeriac.backends.redis.backend import RedisBackend
from celeriac.errors import ConfigurationError
from celeriac.transports.base import TransportOptions
from celeriac.transports.redis.transport import RedisTransport


@pytest.mark.parametrize(
    "url",
    [
        "redis://host",
        "redis://:pw@host:6380/3",
        "redis://host/0?socket_timeout=2.5&socket_keepalive=no&max_connections=20&client_name=me",
        "redis://host/0?db=2&health_check_interval=30&retry_on_timeout=true&username=u&password=p",
        "redis://host/0?socket_timeout=",  # an empty value is ignored, as redis-py ignores it
        "rediss://host/0?ssl_cert_reqs=none&ssl_ca_certs=/ca.pem&ssl_check_hostname=false",
        "redis+socket:///tmp/redis.sock?virtual_host=3",
    ],
)
def test_known_options_pass(url: str) -> None:
    assert check_url(url) == url.split(":", 1)[0]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "redis://host/0?bogus=1",
            "unknown option 'bogus' in Redis URL 'redis://host/0?bogus=1' (known: client_name, db,",
        ),
        ("redis://host/0?sockettimeout=1", "unknown option 'sockettimeout' in Redis URL"),
        ("redis://host/0?sockettimeout=1", "did you mean 'socket_timeout'?"),
        ("redis://host/0?ssl_cert_reqs=none", "(ssl_* options need a rediss:// URL)"),
        ("redis://host?virtual_host=1", "unknown option 'virtual_host'"),
        ("redis://host/0?protocol=3", "unknown option 'protocol'"),  # celeriac speaks RESP2 only
        ("redis://host/0?socket_timeout=abc", "Redis URL option 'socket_timeout' must be a number >= 0, not 'abc'"),
        ("redis://host/0?db=one", "Redis URL option 'db' must be a whole number >= 0, not 'one'"),
        ("redis://host/0?socket_keepalive=off", "'socket_keepalive' must be one of 1/0, true/false, yes/no"),
        ("rediss://host/0?ssl_cert_reqs=CERT_NONE", "'ssl_cert_reqs' must be one of none, optional, required"),
        ("http://host/0", "not a Redis URL: 'http://host/0'"),
    ],
)
def test_unknown_or_malformed_option_is_named(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        check_url(url)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_errors_never_show_the_password() -> None:
    for url in ("redis://:s3cret@host/0?bogus=1", "redis://host/0?password=s3cret&bogus=1"):
        with pytest.raises(ConfigurationError) as raised:
            check_url(url)
        assert "s3cret" not in str(raised.value) and "***" in str(raised.value)


def test_socket_url_becomes_redis_pys_unix_url() -> None:
    assert redis_py_url("redis+socket:///tmp/r.sock?virtual_host=7") == "unix:///tmp/r.sock?db=7"
    assert redis_py_url("redis://host/1?socket_timeout=3") == "redis://host/1?socket_timeout=3"


def test_broker_and_backend_refuse_a_bad_url_option_when_made() -> None:
    with pytest.raises(ConfigurationError, match="unknown option 'bogus'"):
        RedisTransport("redis://127.0.0.1:1/0?bogus=1")
    with pytest.raises(ConfigurationError, match="unknown option 'bogus'"):
        RedisBackend("redis://127.0.0.1:1/0?bogus=1")
    with pytest.raises(ConfigurationError, match="unknown option 'bogus'"):
        make_client("redis://127.0.0.1:1/0?bogus=1", {})


@pytest.mark.parametrize("options", [{"ssl_ca_certs": "/ca.pem"}, {"ssl": {"ssl_cert_reqs": "required"}}])
def test_tls_options_on_a_plain_url_are_refused_not_dropped(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="needs a rediss:// URL"):
        make_client("redis://:secret@127.0.0.1:1/0", options)
    make_client("rediss://127.0.0.1:1/0", options)  # the same options with TLS are fine


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"visibilty_timeout": 10}, "unknown broker transport option 'visibilty_timeout' for Redis; did you mean"),
        ({"queue_order_strategy": "priority"}, "unknown broker transport option 'queue_order_strategy' for Redis"),
        ({"socket_timeout": "soon"}, "broker transport option 'socket_timeout' must be a number >= 0, not 'soon'"),
        ({"max_connections": "many"}, "broker transport option 'max_connections' must be a whole number"),
        ({"block_timeout": "x"}, "broker transport option 'block_timeout' must be a number, not 'x'"),
    ],
)
def test_unknown_or_malformed_transport_option_is_named(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        RedisTransport("redis://127.0.0.1:1/0", TransportOptions(extra=extra))
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_known_transport_options_pass() -> None:
    extra = {
        "global_keyprefix": "p:",
        "fanout_patterns": True,
        "block_timeout": 1,
        "socket_timeout": 5,
        "client_name": "n",
        "ssl_cert_reqs": "none",
    }
    RedisTransport("rediss://127.0.0.1:1/0", TransportOptions(extra=extra))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("broker='redis://127.0.0.1:1/0?bogus=1'", "unknown option 'bogus' in Redis URL"),
        ("broker='sqlite:///b.db', backend='redis://127.0.0.1:1/0?bogus=1'", "unknown option 'bogus' in Redis URL"),
        (
            "broker='redis://127.0.0.1:1/0', broker_transport_options={'bogus': 1}",
            "unknown broker transport option 'bogus' for Redis",
        ),
    ],
)
def test_worker_cli_reports_a_bad_option_in_one_line(settings: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "badopts.py").write_text(f"from celeriac import App\n\napp = App('badopts', {settings})\n")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "celeriac"), "-A", "badopts", "worker"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("celeriac: error: ") and message in lines[0]
    assert "Traceback" not in done.stderr
