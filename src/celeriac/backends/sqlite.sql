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
-- A join (chord): one row per member index; the first record of an index is kept (see join_add).
CREATE TABLE IF NOT EXISTS joins (
    group_id   TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    meta       BLOB NOT NULL,
    expires_at REAL,            -- Unix time; NULL = kept forever; refreshed on every add to the group
    PRIMARY KEY (group_id, idx)
);
-- A chord (canvas): its size, its dispatch claim (a token while one worker sends the body, then 'done').
CREATE TABLE IF NOT EXISTS chords (
    group_id    TEXT PRIMARY KEY,
    size        INTEGER,         -- NULL until the client or a header task (the body's chord_size) sets it
    claim       TEXT,            -- NULL, a claim token, or 'done'
    claim_until REAL,            -- Unix time the token's claim lapses
    expires_at  REAL
);
-- A chord's header outcomes; (task_id, idx) is the fence: a redelivered header task never counts twice.
CREATE TABLE IF NOT EXISTS chord_parts (
    group_id   TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    task_id    TEXT NOT NULL,
    entry      BLOB NOT NULL,   -- [1, task id, state, result], result serializer (Celery's .j entry)
    expires_at REAL,
    PRIMARY KEY (group_id, idx, task_id)
);
-- A saved GroupResult (GroupResult.save()).
CREATE TABLE IF NOT EXISTS saved_groups (
    group_id   TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    expires_at REAL
);
-- A lease: token is the last fencing token handed out for the name, never lowered, so tokens are never reused.
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT,            -- NULL once released
    token      INTEGER NOT NULL,
    expires_at REAL NOT NULL    -- Unix time
);
-- What holders of a lease recorded (fenced writes), kept forever.
CREATE TABLE IF NOT EXISTS fenced (
    name  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (name, key)
);

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

-- name: purge_expired_joins
DELETE FROM joins WHERE expires_at <= :now;

-- name: purge_expired_chords
DELETE FROM chords WHERE expires_at <= :now;
DELETE FROM chord_parts WHERE expires_at <= :now;
DELETE FROM saved_groups WHERE expires_at <= :now;

-- name: chord_drop_expired
DELETE FROM chords WHERE group_id = :group_id AND expires_at <= :now;
DELETE FROM chord_parts WHERE group_id = :group_id AND expires_at <= :now;

-- name: chord_start
INSERT INTO chords (group_id, size, claim, claim_until, expires_at) VALUES (:group_id, :size, NULL, NULL, :expires_at)
ON CONFLICT (group_id) DO UPDATE SET size = excluded.size, claim = NULL, claim_until = NULL,
    expires_at = excluded.expires_at;

-- name: chord_forget_parts
DELETE FROM chord_parts WHERE group_id = :group_id;

-- name: chord_get
SELECT size, claim, claim_until FROM chords WHERE group_id = :group_id;

-- name: chord_touch
INSERT INTO chords (group_id, size, expires_at) VALUES (:group_id, :size, :expires_at)
ON CONFLICT (group_id) DO UPDATE SET size = coalesce(chords.size, excluded.size), expires_at = excluded.expires_at;

-- name: chord_add
INSERT INTO chord_parts (group_id, idx, task_id, entry, expires_at) VALUES (:group_id, :idx, :task_id, :entry, :expires_at)
ON CONFLICT (group_id, idx, task_id) DO NOTHING;

-- name: chord_touch_parts
UPDATE chord_parts SET expires_at = :expires_at WHERE group_id = :group_id;

-- name: chord_count
SELECT count(*) FROM chord_parts WHERE group_id = :group_id;

-- name: chord_claim
UPDATE chords SET claim = :token, claim_until = :claim_until WHERE group_id = :group_id;

-- name: chord_entries
SELECT entry FROM chord_parts WHERE group_id = :group_id ORDER BY idx, task_id;

-- name: chord_done
UPDATE chords SET claim = 'done', claim_until = NULL, expires_at = :expires_at
WHERE group_id = :group_id AND claim = :token;

-- name: group_save
INSERT INTO saved_groups (group_id, value, expires_at) VALUES (:group_id, :value, :expires_at)
ON CONFLICT (group_id) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at;

-- name: group_get
SELECT value FROM saved_groups WHERE group_id = :group_id AND (expires_at IS NULL OR expires_at > :now);

-- name: group_forget
DELETE FROM saved_groups WHERE group_id = :group_id;

-- name: join_drop_expired
DELETE FROM joins WHERE group_id = :group_id AND expires_at <= :now;

-- name: join_add
-- The first record of an index is kept: a repeated member changes nothing (changes() = 0).
INSERT INTO joins (group_id, idx, meta, expires_at) VALUES (:group_id, :idx, :meta, :expires_at)
ON CONFLICT (group_id, idx) DO NOTHING;

-- name: join_touch
UPDATE joins SET expires_at = :expires_at WHERE group_id = :group_id;

-- name: join_count
SELECT count(*) FROM joins WHERE group_id = :group_id;

-- name: join_all
SELECT meta FROM joins WHERE group_id = :group_id ORDER BY idx;

-- name: lease_get
SELECT holder, token, expires_at FROM leases WHERE name = :name;

-- name: lease_set
INSERT INTO leases (name, holder, token, expires_at) VALUES (:name, :holder, :token, :expires_at)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = excluded.token, expires_at = excluded.expires_at;

-- name: lease_renew
UPDATE leases SET expires_at = :expires_at
WHERE name = :name AND holder = :holder AND token = :token AND expires_at > :now;

-- name: lease_release
UPDATE leases SET holder = NULL, expires_at = :now
WHERE name = :name AND holder = :holder AND token = :token AND expires_at > :now;

-- name: lease_live
SELECT 1 FROM leases WHERE name = :name AND token = :token AND holder IS NOT NULL AND expires_at > :now;

-- name: fenced_set
INSERT INTO fenced (name, key, value) VALUES (:name, :key, :value)
ON CONFLICT (name, key) DO UPDATE SET value = excluded.value;

-- name: fenced_get
SELECT value FROM fenced WHERE name = :name AND key = :key;
