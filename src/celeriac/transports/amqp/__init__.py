"""The RabbitMQ (AMQP 0-9-1) transport."""

from celeriac.transports.amqp.transport import AMQPTransport

__all__ = ["AMQPTransport"]
