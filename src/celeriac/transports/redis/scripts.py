"""The Lua scripts of the Redis transport, one constant each; the docstring of each states its guarantee.

A script runs atomically on the server: no other command sees a message half-way between two keys. The
scripts read only kombu's data layout (celery-wire.md §2.1, §2.5) plus celeriac's delivery counters
(`keys`), so kombu processes sharing the database keep working. Delivery counters are addressed by
prefix + tag inside the scripts, which is fine on a single Redis server (kombu's transport does not support
Redis Cluster either).

Scripts never raise after they have removed a message from a list: every type check that could fail is done
before the first pop, so an error can never leave a message in neither place.
"""

from __future__ import annotations

# Shared Lua helpers, prepended to the scripts that need them.
_JSON_STRING = """
-- A JSON string literal for s, as Python's json.dumps writes it for ASCII text (cjson escapes '/' as '\\/';
-- undo that so the unacked entry has the bytes kombu writes).
local function json_string(s)
  return (string.gsub(cjson.encode(s), '\\\\/', '/'))
end
local function is_type(key, wanted)
  local t = redis.call('TYPE', key)['ok']
  return t == 'none' or t == wanted
end
"""

FETCH = (
    _JSON_STRING
    + """
-- KEYS: unacked, unacked_index, claim, owned, list_1..list_n, dead_1..dead_n (dead_i: the dead-letter list of
--       list_i's queue; claim: the consumer's claim key, see below; owned: its transport's owned hash)
-- ARGV: max messages, now (unacked_index score), delivery counter prefix, counter TTL s, max deliveries (0 = no
--       limit), dead-letter TTL s, mode ('F' fetch or 'C' claim), generation, request id, claim TTL ms, id of
--       the claim to open (mode F)
-- Returns {delivered, dead, state, detail}: delivered and dead are flat triples {list index, envelope, delivery
-- count}; state is 'fetched', 'opened', 'claimed', 'open' or 'stale' (see the docstring); detail is the id of
-- the claim taken ('claimed') or the claim key's value ('stale').
local claim = KEYS[3]
local mode, generation, rid, claim_ttl = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local want = tonumber(ARGV[1])
local open_id
if mode == 'C' then
  local value = redis.call('GET', claim)
  local open_generation, count
  if value then open_generation, count, open_id = string.match(value, '^open (%S+) (%d+) (%d+)$') end
  if open_generation ~= generation then return {{}, {}, 'stale', value} end
  want = tonumber(count)
else
  redis.call('DEL', claim)  -- whatever an earlier idle spell left there is over: the consumer fetches itself
end
local n = (#KEYS - 4) / 2
if not is_type(KEYS[1], 'hash') or not is_type(KEYS[2], 'zset') or not is_type(KEYS[4], 'hash') then
  return redis.error_reply('unacked keys have the wrong type')
end
for i = 1, n do
  if not is_type(KEYS[4 + i], 'list') or not is_type(KEYS[4 + n + i], 'list') then
    return redis.error_reply('queue key ' .. KEYS[4 + i] .. ' is not a list')
  end
end
local now = ARGV[2]
local prefix = ARGV[3]
local counter_ttl = tonumber(ARGV[4])
local max_deliveries = tonumber(ARGV[5])
local dead_ttl = tonumber(ARGV[6])
local delivered, dead = {}, {}
local alone = false  -- a suspect was taken: it travels alone, nothing more this time

local function bury(i, raw, count)
  local key = KEYS[4 + n + i]
  redis.call('LPUSH', key, raw)
  redis.call('EXPIRE', key, dead_ttl)
  dead[#dead + 1] = i; dead[#dead + 1] = raw; dead[#dead + 1] = count
end

local function take(i, raw)
  local ok, envelope = pcall(cjson.decode, raw)
  local tag, exchange, routing_key
  if ok and type(envelope) == 'table' and type(envelope['properties']) == 'table' then
    local properties = envelope['properties']
    tag = properties['delivery_tag']
    local info = properties['delivery_info']
    if type(info) == 'table' then
      exchange = info['exchange']
      routing_key = info['routing_key']
    end
  end
  if type(tag) ~= 'string' or tag == '' then
    bury(i, raw, 0)  -- no tag: it cannot be tracked in unacked, so it could never be acked
    return false
  end
  if type(exchange) ~= 'string' then exchange = '' end
  if type(routing_key) ~= 'string' then routing_key = '' end
  local counter = prefix .. tag
  local count = redis.pcall('INCR', counter)
  if type(count) ~= 'number' then  -- a foreign value under our name: start counting again
    redis.call('DEL', counter)
    count = redis.call('INCR', counter)
  end
  local suspect = count > 1 and redis.call('EXISTS', counter .. '.suspect') == 1
  if suspect and #delivered > 0 then
    redis.call('DECR', counter)  -- not delivered after all: it goes back, first in line for the next fetch
    return 'back'
  end
  if max_deliveries > 0 and count > max_deliveries then
    redis.call('DEL', counter)
    bury(i, raw, count)
    return false
  end
  redis.call('EXPIRE', counter, counter_ttl)
  -- kombu's entry: JSON [envelope, exchange, routing_key]; the envelope bytes are kept as they were.
  redis.call('HSET', KEYS[1], tag, '[' .. raw .. ', ' .. json_string(exchange) .. ', ' ..
    json_string(routing_key) .. ']')
  redis.call('ZADD', KEYS[2], now, tag)
  redis.call('HSET', KEYS[4], tag, count)
  if suspect then  -- reported with a negative count
    alone = true
    count = -count
  end
  delivered[#delivered + 1] = i; delivered[#delivered + 1] = raw; delivered[#delivered + 1] = count
  return true
end

for i = 1, n do
  while want > 0 and not alone do
    local items = redis.call('RPOP', KEYS[4 + i], want)
    if not items then break end
    for k, raw in ipairs(items) do
      local taken = take(i, raw)
      if taken == true then want = want - 1 end
      if taken == 'back' or alone then  -- put back what is left of this pop, in its order
        for j = #items, (taken == 'back') and k or k + 1, -1 do redis.call('RPUSH', KEYS[4 + i], items[j]) end
        alone = true
        break
      end
    end
  end
  if alone then break end
end
if #delivered > 0 then redis.call('PEXPIRE', KEYS[4], claim_ttl) end
if mode == 'C' then
  if #delivered > 0 then
    redis.call('SET', claim, 'claimed ' .. rid, 'PX', claim_ttl)
    return {delivered, dead, 'claimed', open_id}
  end
  redis.call('PEXPIRE', claim, claim_ttl)
  return {delivered, dead, 'open', false}
end
if #delivered == 0 and #dead == 0 then
  redis.call('SET', claim, 'open ' .. generation .. ' ' .. ARGV[1] .. ' ' .. ARGV[11], 'PX', claim_ttl)
  return {delivered, dead, 'opened', false}
end
return {delivered, dead, 'fetched', false}
"""
)
"""Move up to N messages from the queue lists into ``unacked`` + ``unacked_index``, in one step.

Guarantee: a message popped from a list is, when the script returns, either recorded in ``unacked`` (with
``unacked_index`` score = ``now`` and its delivery counter incremented) and returned, or pushed onto the
dead-letter list of its queue (no delivery tag, or more than ``max deliveries``) and reported. There is no
moment at which it is in neither place, so a crashed consumer or dropped connection cannot lose it: at worst
it waits in ``unacked`` for the visibility-timeout restore, or, being recorded in its transport's ``owned`` hash
in the same step, is put back by `recover` when that transport closes. Lists are served in KEYS order (kombu's BRPOP
order), each from its right end (FIFO with kombu's LPUSH).

A *suspect* (a message the visibility-timeout restore brought back: its consumer died holding it, so it may be
what killed it; `MOVE_BACK` marks it) is delivered alone: a fetch that meets one after taking others puts it
back first in line, and a fetch that takes one takes nothing after it (its count is reported negative). So a
poison message is not fetched together with innocent ones, which would die with it and be counted with it.

The claim key makes an idle consumer's armed fetches (`wait`) safe. Mode ``F`` (a fetch the consumer
runs itself) first deletes the key; if it finds every list empty it *opens* the claim: ``open <generation>
<max> <id>`` (state ``opened``), ``max`` being the consumer's free prefetch window at that moment. Mode ``C`` (a
fetch sent behind a BLMOVE, run when that returns) takes messages only while the claim is open for its
generation, and at most ``max``; if it takes any it marks the claim ``claimed <request id>`` and returns the
claim's id (state ``claimed``), so every other
armed fetch of that idle spell finds it ``stale`` (the value is returned) and takes nothing: together they never
take more than the window. An armed fetch that finds nothing leaves the claim open (state ``open``) and renews
its TTL. Only a mode ``F`` fetch or `CLOSE_CLAIM` changes an open or claimed claim again.
"""

CLOSE_CLAIM = """
-- KEYS: claim. Returns the value before (nil when there was none).
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, 5) == 'open ' then redis.call('SET', KEYS[1], 'closed', 'KEEPTTL') end
return value
"""
"""Close a consumer's open claim (``open ...`` becomes ``closed``), so no armed fetch can take messages any more.

Guarantee: after it, no armed fetch takes a message for the idle spell it closed. The value it returns tells
the consumer whether one already did (``claimed <request id>``: wait for that reply). Idempotent: run again, it
returns ``closed``, never a different claim.
"""

ACK = """
-- KEYS: unacked, unacked_index, owned. ARGV: delivery counter prefix, then pairs (tag, delivery count).
local acked = 0
for i = 2, #ARGV, 2 do
  local tag = ARGV[i]
  local counter = ARGV[1] .. tag
  local current = redis.call('GET', counter)
  if (not current) or current == ARGV[i + 1] then
    acked = acked + redis.call('HDEL', KEYS[1], tag)
    redis.call('ZREM', KEYS[2], tag)
    redis.call('DEL', counter)
    if ARGV[i + 1] ~= '1' then redis.call('DEL', counter .. '.suspect') end  -- only a redelivery can be one
  end
  redis.call('HDEL', KEYS[3], tag)
end
return acked
"""
"""Forget acked (or dropped) deliveries: ``HDEL unacked`` + ``ZREM unacked_index`` + delete the counter (and
the suspect mark of a redelivery), and drop them from the transport's owned hash.

Guarantee: all tags of the batch are forgotten in one step, except a tag whose counter shows it was
delivered again since (restored after its visibility timeout and fetched by another consumer): that newer
delivery keeps its bookkeeping, so it is still restored if *its* consumer dies. Returns how many were
removed from ``unacked``.
"""

MOVE_BACK = """
-- KEYS: unacked, unacked_index, delivery counter, owned hash (or any unused key), target list 1..n
-- ARGV: tag, envelope to push, 'L' (LPUSH: back of the queue) or 'R' (RPUSH: front), expected delivery count
--       or '', expected unacked value or '', highest unacked_index score or '', suspect mark TTL s or ''
local tag = ARGV[1]
local current = redis.call('HGET', KEYS[1], tag)
if not current then
  -- An index entry without its hash entry (kombu writes them in two commands): drop it once expired.
  if ARGV[6] ~= '' then
    local score = redis.call('ZSCORE', KEYS[2], tag)
    if score and tonumber(score) <= tonumber(ARGV[6]) then redis.call('ZREM', KEYS[2], tag) end
  end
  return -1
end
if ARGV[5] ~= '' and current ~= ARGV[5] then return -1 end
if ARGV[4] ~= '' then
  local count = redis.call('GET', KEYS[3])
  if count and count ~= ARGV[4] then return -1 end
end
if ARGV[6] ~= '' then
  local score = redis.call('ZSCORE', KEYS[2], tag)
  if score and tonumber(score) > tonumber(ARGV[6]) then return -1 end
end
for i = 5, #KEYS do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= 'list' then return redis.error_reply('queue key ' .. KEYS[i] .. ' is not a list') end
end
redis.call('HDEL', KEYS[1], tag)
redis.call('ZREM', KEYS[2], tag)
redis.call('HDEL', KEYS[4], tag)
if ARGV[7] ~= '' then redis.call('SET', KEYS[3] .. '.suspect', '1', 'EX', tonumber(ARGV[7])) end
for i = 5, #KEYS do
  if ARGV[3] == 'L' then redis.call('LPUSH', KEYS[i], ARGV[2]) else redis.call('RPUSH', KEYS[i], ARGV[2]) end
end
return #KEYS - 4
"""
"""Put one delivered message back on its queue list(s): reject with requeue, and restore.

Guarantee: the ``unacked`` entry is removed and the envelope pushed in one step, and only if the entry is
still the one the caller saw: present, with the expected delivery count and/or value, and (for the
visibility-timeout restore) not renewed since the caller read its score. So two restorers, or a restorer
and an ack, never both act on one delivery: the message comes back at most once. Returns the number of
lists pushed to (0: no route, the message is dropped as kombu drops it), or -1 when nothing was done.
"""

BURY = """
-- KEYS: unacked, unacked_index, delivery counter, dead-letter list, dead-letter reasons hash
-- ARGV: tag, envelope, dead-letter TTL s, reason
local t = redis.call('TYPE', KEYS[4])['ok']
if t ~= 'none' and t ~= 'list' then return redis.error_reply('dead-letter key is not a list') end
t = redis.call('TYPE', KEYS[5])['ok']
if t ~= 'none' and t ~= 'hash' then return redis.error_reply('dead-letter reasons key is not a hash') end
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('LPUSH', KEYS[4], ARGV[2])
redis.call('EXPIRE', KEYS[4], tonumber(ARGV[3]))
redis.call('HSET', KEYS[5], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[5], tonumber(ARGV[3]))
return 1
"""
"""Move a delivered message whose envelope celeriac cannot read from ``unacked`` to a dead-letter list.

Guarantee: removed from ``unacked``/``unacked_index`` and pushed to the dead-letter list in one step, with the
reason recorded under its delivery tag in the list's reasons hash (``<queue>.dead.reasons``), and only if it was
still in ``unacked`` (returns 1, else 0).
"""

RELEASE_MUTEX = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
"""Release the ``unacked_mutex`` only if it still holds our token (it may have expired and been re-taken)."""

RENEW_MUTEX = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
"""Extend the ``unacked_mutex`` by ARGV[2] ms only if it still holds our token (a sweep still running)."""
