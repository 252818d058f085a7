-- The SQLite result backend's SQL, one named block per statement (loaded once by celeriac.backends.sqlite).
-- A row whose expires_at has passed is invisible to every read; it is deleted later (purge_expired).

-- name: schema
CREATE TABLE IF NOT EXISTS results (
    task_id    TEXT PRIMARY KEY,
    status     TEXT NOT NULL,   -- copied out of meta so SQL can protect SUCCESS and find ready rows
    meta       BLOB NOT NULL,   -- the record, serialized with the result serializer
    expires_at REAL             -- Unix time; NULL = kept forever
);
CREATE INDEX IF NOT EXISTS results_expiry ON results (expires_at) WHERE expires_at IS NOT NULL;

-- name: store
-- A live SUCCESS row is never replaced: a task that ran twice must not turn a success into something else.
INSERT INTO results (task_id, status, meta, expires_at)
VALUES (:task_id, :status, :meta, :expires_at)
ON CONFLICT (task_id) DO UPDATE
SET status = excluded.status, meta = excluded.meta, expires_at = excluded.expires_at
WHERE results.status <> 'SUCCESS' OR results.expires_at <= :now;

-- name: get
SELECT meta FROM results WHERE task_id = :task_id AND (expires_at IS NULL OR expires_at > :now);

-- name: get_ready
SELECT task_id, meta FROM results
WHERE task_id IN (SELECT value FROM json_each(:task_ids))
  AND status IN (SELECT value FROM json_each(:states))
  AND (expires_at IS NULL OR expires_at > :now);

-- name: forget
DELETE FROM results WHERE task_id = :task_id;

-- name: purge_expired
DELETE FROM results WHERE expires_at <= :now;
