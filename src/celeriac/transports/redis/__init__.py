"""The Redis broker, byte-compatible with kombu's Redis transport.

The map: `transport` (the `Transport`), `options` (broker transport options, checked), `keys` (every key name),
`scripts` (the Lua), `fetch` (the fetch script's command and reply), `envelope` (kombu's JSON envelope), `ops`
(every server call, errors translated), `consumer` (the prefetch window, fetch, renew, settle), `delivery` (one
fetched message), `idle` (the armed wait behind two methods) and `wait` (its blocking connection), `restore`
(visibility-timeout restore; dead-letters what it cannot read), `recover` (re-queues what a closing
transport still owns), `pubsub` (fanout). Shared with the result backend: `celeriac._redis` (URLs, clients,
errors, lanes, redis-py workarounds); with the other brokers: `celeriac.transports._batch` (shared round trips).
"""
