"""The Redis broker, byte-compatible with kombu's Redis transport.

The map: `transport` (the `Transport`), `options` (URL and transport options), `keys` (every key name), `scripts`
(the Lua), `envelope` (kombu's JSON envelope), `ops` (commands), `consumer` and `idle`/`wait` (fetching), `restore`
(visibility-timeout restore), `pubsub` (fanout).
"""
