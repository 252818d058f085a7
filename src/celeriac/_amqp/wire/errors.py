"""What the AMQP client raises. `celeriac._amqp.errors` turns these into celeriac's errors at the boundary."""

from __future__ import annotations


class AMQPError(Exception):
    """Anything the AMQP client reports."""


class LinkError(AMQPError):
    """The connection is gone (socket closed or reset, heartbeats missed, or RabbitMQ closed the connection).

    Attributes:
        reply_code: RabbitMQ's reply code when it closed the connection itself (320 CONNECTION_FORCED...), else None.
    """

    def __init__(self, text: str, reply_code: int | None = None) -> None:
        super().__init__(text)
        self.reply_code = reply_code


class LoginRefused(LinkError):
    """RabbitMQ refused the user name or password (403 ACCESS_REFUSED during the opening)."""


class VhostRefused(LinkError):
    """The virtual host does not exist or the user may not use it (530 NOT_ALLOWED / 403 on ``connection.open``)."""


class ChannelClosed(AMQPError):
    """RabbitMQ closed one channel because of a request (the connection lives on).

    Attributes:
        reply_code: 406 PRECONDITION_FAILED, 404 NOT_FOUND, 403 ACCESS_REFUSED, 405 RESOURCE_LOCKED...
        reply_text: RabbitMQ's text (it names the entity and, for 406, the argument that differs).
    """

    def __init__(self, reply_code: int, reply_text: str) -> None:
        super().__init__(f"{reply_code} {reply_text}")
        self.reply_code = reply_code
        self.reply_text = reply_text


class ChannelUnusable(AMQPError):
    """The channel was closed (by us, or with its connection) before or while it was used."""


class PublishFailed(AMQPError):
    """RabbitMQ did not take a confirmed publish: it nacked it, or returned it as unroutable (``mandatory``).

    Attributes:
        returned: True for a returned message (``reply_code`` 312 NO_ROUTE...), False for a nack.
    """

    def __init__(
        self, *, returned: bool, reply_code: int = 0, reply_text: str = "", exchange: str = "", routing_key: str = ""
    ) -> None:
        super().__init__(reply_text or ("returned" if returned else "nacked"))
        self.returned = returned
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.exchange = exchange
        self.routing_key = routing_key
