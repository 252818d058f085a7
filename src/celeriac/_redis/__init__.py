"""redis-py plumbing shared by the Redis broker and the Redis result backend: URLs, clients, errors, lanes."""
