"""redis-py plumbing shared by the Redis broker and the Redis result backend.

The map: `urls` (schemes, query options, redaction), `client` (clients and connections from a URL and options),
`errors` (redis-py errors into celeriac's), `lane` (a connection of one caller's own), `heartbeat` (PING on a
pub/sub connection, to notice one that went silently dead), `compat` (every redis-py workaround, version-gated,
with its measured gain).
"""
