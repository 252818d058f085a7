"""aiormq plumbing shared by the AMQP broker and anything else that talks to RabbitMQ: URLs, links, errors."""
