"""Settings: what the app imports and which clock it keeps."""

from __future__ import annotations

from collections.abc import Sequence

from celeriac.settings.setting import Setting, SettingsBase


class AppSettings(SettingsBase):
    """What the app imports and which clock it keeps."""

    __slots__ = ()

    imports = Setting[Sequence[str]]((), (list, tuple))
    include = Setting[Sequence[str]]((), (list, tuple))
    timezone = Setting[str]("UTC", (str,))
    enable_utc = Setting[bool](True, (bool,))
    # OpenTelemetry spans for sends and runs (celeriac._otel; the [otel] extra).
    tracing_enabled = Setting[bool](False, (bool,))
