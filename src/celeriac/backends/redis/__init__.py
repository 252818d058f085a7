"""Results in Redis: `backend` (store, read, forget; the map), `listener` (waits through pub/sub), `link` (the
pub/sub connection: subscriptions and reconnecting), `ahead` (subscriptions made at send time), `unread` (their
bounded bookkeeping), `checks` (their safety-net reads), `primitives` (join and lease).
"""
