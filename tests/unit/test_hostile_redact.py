"""Secrets never shown: URL passwords that break URL parsing, secret keys at any depth of settings and options,
in ``inspect conf``, ``report`` and ``stats`` (issue 10, item 10)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from celeriac import App
from celeriac._redact import MASK, is_secret_key, redact, redact_url
from celeriac.control.shapes import conf_values, masked
from celeriac.worker.stats import broker_info


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:p#ss/wo?rd@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:p@ss@host/0?password=x&db=1", "redis://user:***@host/0?password=***&db=1"),
        ("amqp://guest:gu/est#1@rabbit:5672//", "amqp://guest:***@rabbit:5672//"),
        ("redis://a:b@h1;redis://c:d?@h2", "redis://a:***@h1;redis://c:***@h2"),
        ("rediss://u:pw@h/0?ssl_cert_reqs=required&token=t", "rediss://u:***@h/0?ssl_cert_reqs=required&token=***"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://user@host", "redis://user@host"),
        ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
        ("not a url", "not a url"),
    ],
)
def test_urls_are_redacted_from_the_raw_string(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize("password", ["p#ss", "p/ss", "p?ss", "p@ss", "a#b/c?d@e", "%zz", "[::1]"])
def test_no_password_survives_whatever_it_holds(password: str) -> None:
    for url in (f"redis://:{password}@host:6379/0", f"amqp://user:{password}@host//vhost"):
        assert password not in redact_url(url), url


def test_secret_keys_are_judged_by_their_words() -> None:
    for name in ("password", "ssl_password", "apiToken", "SECRET_KEY", "key", "aws_secret_access_key", "passphrase"):
        assert is_secret_key(name), name
    for name in ("routing_key", "task_default_routing_key", "global_keyprefix", "ssl_keyfile", "visibility_timeout"):
        assert not is_secret_key(name), name


def test_secrets_are_masked_at_every_depth() -> None:
    options = {
        "global_keyprefix": "p:",
        "sentinel_kwargs": {"password": "s1"},
        "ssl": {"ssl_password": "s2", "ssl_keyfile": "/k.pem", "extra": [{"token": "s3"}, "redis://:s4@h"]},
        "empty_password": "",
    }
    shown = redact(options)
    assert shown == {
        "global_keyprefix": "p:",
        "sentinel_kwargs": {"password": MASK},
        "ssl": {"ssl_password": MASK, "ssl_keyfile": "/k.pem", "extra": [{"token": MASK}, "redis://:***@h"]},
        "empty_password": "",
    }
    assert masked("broker_transport_options", options) == shown


def _conf_app() -> App:
    return App(
        "secrets",
        broker="redis://:top#secret/1@localhost:6379/0",
        broker_transport_options={"ssl": {"ssl_password": "pw-in-ssl"}, "nested": [{"password": "pw2"}]},
        result_backend="redis://u:pw3@localhost/1",
    )


class _Node:
    def __init__(self, app: App) -> None:
        self.app = app

    def settings(self, with_defaults: bool) -> Any:
        return self.app.conf.changes()


def test_inspect_conf_report_and_stats_show_no_secret() -> None:
    app = _conf_app()
    shown = json.dumps(conf_values(_Node(app), with_defaults=False))  # type: ignore[arg-type]
    address = App("a", broker="sqlite:///unused.db").make_transport().address()
    info = json.dumps(broker_info(address, dict(app.conf.broker_transport_options)))
    for text in (shown, info):
        for secret in ("top#secret", "pw-in-ssl", "pw2", "pw3"):
            assert secret not in text
