"""Scripts of the streams: the events streams' consumer groups, their workers and leases, and each node's inbox
(append, trim)."""

from .prelude import PRELUDE

# KEYS: events
# ARGV: group, consumer -> 1; creates the events stream, the group (from the start) and the consumer if missing
ENSURE_GROUP = PRELUDE + r"""
-- The group ARGV[1] of the events stream KEYS[1], and its consumer ARGV[2]: each made if missing (Redis 7.0
-- makes a consumer only once it is given an entry, so a waiting worker was not seen in the group).
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
redis.call('XGROUP', 'CREATECONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: the lock
# ARGV: owner, ttl ms, 'take' | 'give' -> 1 if the owner holds (or gave up) the lock
# Taking a lock one already holds renews it: a retried take must not leave the lock unused until it expires.
# The reaper's lock, and each events partition's lease.
LOCK = PRELUDE + r"""
if ARGV[3] == 'take' then
  if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

# KEYS: a group's workers (zset: worker -> Redis time of its last read, ms)
# ARGV: worker, ttl ms, 'join' | 'leave' -> the workers seen within the TTL
WORKERS = PRELUDE + r"""
local now = now_ms()
if ARGV[3] == 'join' then redis.call('ZADD', KEYS[1], now, ARGV[1]) else redis.call('ZREM', KEYS[1], ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

INBOX = PRELUDE + r"""
-- Trim the inbox (KEYS[1]; its byte count KEYS[2], `held` now; its index KEYS[3], "<id> <bytes>"
-- oldest first): the oldest entries while it holds more than `limit` bytes, then at most `step` more
-- older than `oldest` ms. Each entry goes once, so the byte trimming costs one step per append on
-- average; the age trimming is capped, and left to the node's upkeep beat.
local function trim(held, limit, oldest, step)
  while true do
    local first = redis.call('LINDEX', KEYS[3], 0)
    if not first then break end
    local entry, ms, size = string.match(first, '^((%d+)-%d+) (%d+)$')
    if held <= limit then
      if tonumber(ms) >= oldest or step <= 0 then break end
      step = step - 1
    end
    redis.call('XDEL', KEYS[1], entry)
    redis.call('LPOP', KEYS[3])
    held = redis.call('DECRBY', KEYS[2], tonumber(size))
  end
  return held
end
"""

# KEYS: node inbox, node inbox size, node inbox index
# ARGV: batch id, batch (JSON), max bytes
# Appends one batch, and trims (see INBOX) only when it holds too many bytes: three commands on the
# hot path. One node's keys: one slot. Run twice, it appends twice: the node skips a batch id it
# has seen (RedisBackend.receive).
APPEND = INBOX + r"""
local size = #ARGV[2]
local id = redis.call('XADD', KEYS[1], '*', 'b', ARGV[1], 'p', ARGV[2])
redis.call('RPUSH', KEYS[3], id .. ' ' .. size)
local held, limit = redis.call('INCRBY', KEYS[2], size), tonumber(ARGV[3])
if held > limit then held = trim(held, limit, 0, 0) end
return held
"""

# KEYS: node inbox, node inbox size, node inbox index
# ARGV: max bytes, oldest time to keep (ms): what a node runs on its own idle inbox, so that what
# nobody sends to it any more does not stay in Redis.
TRIM_INBOX = INBOX + r"""
return trim(tonumber(redis.call('GET', KEYS[2]) or '0'), tonumber(ARGV[1]), tonumber(ARGV[2]), 1000)
"""
