"""The web dashboard: a durable SQLite event store, server-rendered pages, control actions, ``/metrics``.

Needs the ``dashboard`` extra (Starlette, uvicorn, Jinja2, prometheus-client); ``celeriac dashboard`` runs it.
"""
