"""Django projects: a worker started with ``DJANGO_SETTINGS_MODULE`` set sets Django up before it loads tasks.

As Celery's worker does (its Django fix-up), so task bodies may use the ORM and the app registry
(``django.apps``) without ``AppRegistryNotReady``. Nothing happens without the variable; with it but without
Django installed, the worker says so once and goes on.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("celeriac.worker")


def setup_django() -> bool:
    """``django.setup()`` when ``DJANGO_SETTINGS_MODULE`` names the settings; whether Django is set up."""
    module = os.environ.get("DJANGO_SETTINGS_MODULE")
    if not module:
        return False
    try:
        import django  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        log.warning("DJANGO_SETTINGS_MODULE=%s is set but Django is not installed: not setting it up", module)
        return False
    django.setup()  # idempotent: an already populated registry is left as it is
    log.info("Django set up with %s", module)
    return True
