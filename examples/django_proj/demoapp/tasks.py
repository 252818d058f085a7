"""A Django app's tasks, found by app.autodiscover_tasks()."""

from celeriac import shared_task


@shared_task
def add(x, y):
    return x + y


@shared_task
def count_apps():
    from django.apps import apps

    return len(list(apps.get_app_configs()))
