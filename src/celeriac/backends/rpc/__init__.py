"""The ``rpc://`` result backend: results as AMQP messages to the client that sent the task (Celery's rpc)."""

from celeriac.backends.rpc.backend import RPCBackend

__all__ = ["RPCBackend"]
