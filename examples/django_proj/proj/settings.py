"""Settings of the sample Django project (only what the sample needs)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "sample-project-not-secret"
DEBUG = True
ALLOWED_HOSTS: list[str] = []
INSTALLED_APPS = ["django.contrib.contenttypes", "demoapp"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
USE_TZ = True
TIME_ZONE = "UTC"

# celeriac reads the CELERY_-prefixed settings, as Celery does (config_from_object(..., namespace="CELERY")).
CELERY_BROKER_URL = os.environ.get("PROJ_BROKER_URL", f"sqlite:///{BASE_DIR / 'celeriac.db'}")
CELERY_RESULT_BACKEND = os.environ.get("PROJ_RESULT_BACKEND", CELERY_BROKER_URL)
CELERY_TASK_TRACK_STARTED = True
CELERY_TIMEZONE = TIME_ZONE
