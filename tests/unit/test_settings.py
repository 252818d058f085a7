"""Settings: Celery's names, attribute and mapping access, one-line errors, freezing, environment overrides."""

from __future__ import annotations

import pytest

from celeriac import App
from celeriac.errors import ConfigurationError, UnknownSetting
from celeriac.settings import Settings


def test_defaults_and_access_by_attribute_and_key() -> None:
    conf = Settings()
    assert conf.task_default_queue == "celery"
    assert conf["result_expires"] == 86400
    conf.task_acks_late = True
    assert conf["task_acks_late"] is True
    conf.update({"worker_prefetch_multiplier": 8}, result_extended=True)
    assert conf.worker_prefetch_multiplier == 8 and conf.result_extended is True
    assert conf.changes() == {"task_acks_late": True, "worker_prefetch_multiplier": 8, "result_extended": True}


def test_unknown_setting_names_it_with_a_suggestion() -> None:
    conf = Settings()
    with pytest.raises(UnknownSetting) as info:
        conf.update(task_acks_lat=True)
    assert str(info.value) == "unknown setting 'task_acks_lat'; did you mean 'task_acks_late'?"
    with pytest.raises(AttributeError, match="broker_ur"):
        _ = conf.broker_ur


def test_wrong_type_is_a_one_line_error_naming_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="'worker_prefetch_multiplier' must be int") as info:
        Settings({"worker_prefetch_multiplier": "four"})
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigurationError, match="task_acks_late"):
        Settings({"task_acks_late": 1})  # an int is not a bool


def test_a_priority_the_wire_cannot_carry_is_refused_when_set() -> None:
    with pytest.raises(ConfigurationError, match="'task_default_priority' must be between 0 and 255, not 300"):
        Settings({"task_default_priority": 300})
    with pytest.raises(ConfigurationError, match="task_queue_max_priority"):
        Settings({"task_queue_max_priority": 0})
    assert Settings({"task_default_priority": 255}).task_default_priority == 255


def test_update_is_all_or_nothing() -> None:
    conf = Settings()
    with pytest.raises(UnknownSetting):
        conf.update(task_acks_late=True, nope=1)
    assert conf.task_acks_late is False


def test_frozen_after_finalize() -> None:
    app = App("frozen", broker="sqlite:///unused.db")
    app.finalize()
    with pytest.raises(ConfigurationError, match="frozen"):
        app.conf.task_acks_late = True


def test_environment_overrides_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_BROKER_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("CELERIAC_RESULT_BACKEND", "sqlite:///results.db")
    app = App("env", broker="sqlite:///ignored.db")
    assert app.broker_url == "redis://127.0.0.1:6379/3"
    assert app.backend_url == "sqlite:///results.db"


def test_config_from_object_reads_lowercase_names() -> None:
    class Config:
        task_default_queue = "jobs"
        result_expires = 60
        NOT_A_SETTING = 1

    app = App("cfg")
    app.config_from_object(Config)
    assert app.conf.task_default_queue == "jobs" and app.conf.result_expires == 60


def test_default_broker_is_embedded_sqlite_and_backend_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELERIAC_BROKER_URL", raising=False)
    monkeypatch.delenv("CELERIAC_RESULT_BACKEND", raising=False)
    app = App("defaults")
    assert app.broker_url == "sqlite:///celeriac.db"
    assert app.backend_url == "sqlite:///celeriac.db"
    assert App("amqp", broker="amqp://guest@localhost//").backend_url is None


@pytest.mark.parametrize("url", ["amqp://guest@localhost//", "amqps://localhost//", "pyamqp://localhost//"])
def test_amqp_broker_makes_an_amqp_transport_with_the_amqp_settings(url: str) -> None:
    app = App("amqp", broker=url)
    app.conf.update(broker_heartbeat=30, task_default_queue_type="quorum")
    transport = app.make_transport()  # no I/O until connect()
    assert type(transport).__name__ == "AMQPTransport"
    assert transport.options.heartbeat == 30 and transport.options.queue_type == "quorum"  # type: ignore[attr-defined]
    assert transport.address().ssl == url.startswith("amqps")
