"""RPCBackend: ``result_backend = "rpc://"``, results as messages to the sending client, as Celery's rpc backend.

The wire, exactly Celery's (celery-wire.md §1.2, §8.5):

* A client that sends a task declares its reply queue first: named after its oid (one per backend, so one per
  event loop of an app, as Celery has one per thread), on the default exchange, ``durable=True``,
  ``auto_delete=True``, ``x-expires`` = ``result_expires`` in ms; the task message's ``reply_to`` names it and
  its ``correlation_id`` is the task id.
* The worker publishes every state it stores (STARTED, RETRY, SUCCESS, FAILURE, REVOKED) to the default exchange
  with routing key = that ``reply_to`` and the message's ``correlation_id``; the body is the meta record
  (celery-wire.md §6.2, ``task_id`` included) in the result serializer, ``delivery_mode`` 1.
* The client consumes its reply queue without acks and keeps what it received per task id (`inbox.Inbox`).

What it cannot do, with a one-line error naming ``rpc://``: read the result of a task another client sent (or one
read and forgotten already), chord joins and leases (nothing is stored anywhere).
"""

from __future__ import annotations

import logging
import uuid
from typing import NoReturn

from celeriac._amqp.urls import SCHEMES as AMQP_SCHEMES
from celeriac._amqp.urls import parse_url
from celeriac._amqp.wire.channel import Delivered
from celeriac._amqp.wire.codec import Properties
from celeriac._redact import redact_url
from celeriac.backends.base import BackendOptions, ReplyTo, ResultBackend, TaskMeta
from celeriac.backends.rpc.inbox import Inbox
from celeriac.backends.rpc.link import ReplyLink
from celeriac.errors import BackendError, CeleriacError, ConfigurationError, TransportError
from celeriac.protocol import serializers

log = logging.getLogger("celeriac.backends.rpc")


def _unsupported(what: str) -> NoReturn:
    raise ConfigurationError(
        f"the rpc:// result backend cannot {what}: it keeps no records; use redis:// or sqlite:// results"
    )


class RPCBackend(ResultBackend):
    """Results sent as messages to the reply queue of the client that sent the task (``rpc://``).

    Args:
        url: ``rpc://`` (nothing after it: the connection is the broker's, ``options.broker_url``).
        options: the result options; ``options.broker_url`` must be an AMQP URL.

    Raises:
        ConfigurationError: anything after ``rpc://``, a broker that is not RabbitMQ, or transport options.
    """

    holds_leases = False

    def __init__(self, url: str, options: BackendOptions) -> None:
        super().__init__(options)
        scheme, _, rest = url.partition("://")
        if scheme.lower() != "rpc" or rest.strip("/"):
            raise ConfigurationError(
                f"result backend {redact_url(url)!r}: write just 'rpc://' (it uses the broker's connection)"
            )
        broker = options.broker_url or ""
        if broker.partition("://")[0].lower() not in AMQP_SCHEMES:
            raise ConfigurationError(
                f"result backend rpc:// sends results through RabbitMQ, but broker_url is {redact_url(broker)!r}; "
                "use an amqp:// broker, or a result backend of its own (redis://, sqlite://)"
            )
        if options.extra:
            raise ConfigurationError(
                f"result backend rpc:// takes no result_backend_transport_options (got {sorted(options.extra)})"
            )
        self.url = "rpc://"
        self.address = parse_url(broker, use_ssl=options.broker_use_ssl)
        self.oid = str(uuid.uuid4())
        self._inbox = Inbox(options.unread_limit)
        query = self.address.query
        self._link = ReplyLink(
            self.address,
            self.oid,
            options.expires,
            self._on_reply,
            heartbeat=float(query.get("heartbeat", options.broker_heartbeat or 0)),
            timeout=float(query.get("connect_timeout", options.broker_connection_timeout)),
        )

    @property
    def inbox(self) -> Inbox:
        """What this client received (for statistics and tests)."""
        return self._inbox

    async def connect(self) -> None:
        """Open the connection to the broker (the reply queue is declared on the first send)."""
        try:
            await self._link.open()
        except TransportError as exc:
            raise BackendError(f"rpc:// results: {exc}") from exc

    async def close(self) -> None:
        """Close the connection and wake every waiter with an error; idempotent."""
        self._inbox.fail_waiters(BackendError("the rpc:// result backend was closed"))
        await self._link.close()

    # -- client side ----------------------------------------------------------------------------------------
    async def reply_to(self, task_id: str | None) -> str:
        """Declare and consume this client's reply queue (once) and return its name for the message's
        ``reply_to``; ``task_id`` (None: a result nobody will read) is remembered as sent from here."""
        try:
            await self._link.listen()
        except TransportError as exc:
            raise BackendError(f"rpc:// results: {exc}") from exc
        if task_id is not None:
            self._inbox.expect(task_id)
        return self.oid

    def _on_reply(self, message: Delivered) -> None:
        properties = message.properties
        try:
            meta = serializers.loads(message.body, properties.content_type, properties.content_encoding, self._accept)
        except CeleriacError as exc:
            log.warning("rpc:// reply dropped (correlation_id %r): %s", properties.correlation_id, exc)
            return
        task_id = properties.correlation_id or (meta.get("task_id") if isinstance(meta, dict) else None)
        if not isinstance(meta, dict) or not isinstance(meta.get("status"), str) or not isinstance(task_id, str):
            log.warning("rpc:// reply dropped: not a result record (correlation_id %r)", properties.correlation_id)
            return
        self._inbox.put(task_id, meta)  # type: ignore[arg-type]  # a record in Celery's format, checked above

    async def get_meta(self, task_id: str) -> TaskMeta:
        """The latest state received for ``task_id``, PENDING if none yet; `BackendError` if not sent here."""
        return self._inbox.meta(task_id)

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskMeta:
        """The final state of ``task_id`` once it arrives on the reply queue."""
        return await self._inbox.wait(task_id, timeout)

    async def forget(self, task_id: str) -> None:
        """Drop what this client received for ``task_id`` (RabbitMQ keeps nothing to delete)."""
        self._inbox.forget(task_id)

    # -- worker side ----------------------------------------------------------------------------------------
    async def store(self, meta: TaskMeta, expires: float | None = None) -> None:
        """Nothing to send to: a state is sent only where a task message asked for it (`store_task`)."""
        await self.store_task(meta, None, expires)

    async def store_task(self, meta: TaskMeta, reply: ReplyTo | None, expires: float | None = None) -> None:
        """Publish ``meta`` to the sending client's reply queue; returns once RabbitMQ confirmed it.

        A message without ``reply_to`` (its sender does not use rpc://) has nowhere to send the state to: a
        warning says so, as the state is then lost (Celery drops it silently).
        """
        if reply is None or not reply.queue:
            log.warning(
                "rpc:// result of task %s (%s) not sent: its message has no reply_to (its sender does not use "
                "rpc:// results)",
                meta["task_id"],
                meta["status"],
            )
            return
        content_type, encoding, body = self._dumps(meta)
        properties = Properties(
            content_type=content_type,
            content_encoding=encoding,
            correlation_id=reply.correlation_id,
            delivery_mode=1,
            headers={},
        )
        await self._link.publish(body, reply.queue, properties)

    # -- what rpc cannot do ---------------------------------------------------------------------------------
    async def join_add(
        self, group_id: str, index: int, meta: TaskMeta, size: int, expires: float | None = None
    ) -> list[TaskMeta] | None:
        """Not supported: raises `ConfigurationError` (Celery: "rpc does not support chords")."""
        _unsupported("join chord members (chords need redis:// or sqlite:// results)")

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> int | None:
        """Not supported: raises `ConfigurationError`."""
        _unsupported("hold a lease")

    async def renew_lease(self, name: str, holder: str, token: int, ttl: float) -> bool:
        """Not supported: raises `ConfigurationError`."""
        _unsupported("hold a lease")

    async def release_lease(self, name: str, holder: str, token: int) -> bool:
        """Not supported: raises `ConfigurationError`."""
        _unsupported("hold a lease")

    async def record_fenced(self, name: str, token: int, key: str, value: bytes) -> bool:
        """Not supported: raises `ConfigurationError`."""
        _unsupported("record fenced values")

    async def read_fenced(self, name: str, key: str) -> bytes | None:
        """Not supported: raises `ConfigurationError`."""
        _unsupported("read fenced values")
