"""Settings: where the broker is and how the link to it behaves."""

from __future__ import annotations

from typing import Any

from celeriac.settings.setting import OPT_STR, Setting, SettingsBase


class BrokerSettings(SettingsBase):
    """Where the broker is and how the link to it behaves."""

    __slots__ = ()

    broker_url = Setting[str | None](None, OPT_STR, "broker URL; default: embedded SQLite file ./celeriac.db")
    broker_transport_options = Setting[dict[str, Any]]({}, (dict,), "visibility_timeout, polling_interval, ...")
    broker_connection_retry = Setting[bool](True, (bool,), "reconnect when the broker goes away")
    broker_connection_max_retries = Setting[int | None](None, (int, type(None)), "None: retry forever")
    broker_max_deliveries = Setting[int](10, (int,), "deliveries before a message is dead-lettered")
