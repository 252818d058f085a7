"""An AMQP 0-9-1 client of our own, on asyncio: what celeriac needs of RabbitMQ, read and written fast."""
