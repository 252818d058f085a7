"""RabbitMQ plumbing shared by the AMQP broker and the rpc:// backend: the client (``wire``), URLs, links, errors."""
