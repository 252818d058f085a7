"""Results in Redis: `backend` (store, read, forget), `listener` (waits through pub/sub),
`checks` (safety-net reads).
"""
