"""Scripts of node liveness: heartbeats, the age of registrations, the reaper's lock, forgetting a node."""

from .prelude import PRELUDE

# KEYS: node conns, node alive, node inbox, node inbox size, node inbox index, nodes, draining
# ARGV: node, force -> 1 when the node's keys are gone
FORGET_NODE = PRELUDE + r"""
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('HLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
-- A reaped node's inbox goes too; a node of this name that cleans up after itself keeps reading its inbox.
if ARGV[2] ~= '1' then redis.call('DEL', KEYS[3], KEYS[4], KEYS[5]) end
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('SREM', KEYS[7], ARGV[1])  -- killed while it drained: its next process takes terminals
return 1
"""

# KEYS: node alive, nodes
# ARGV: node, boot id, ttl ms, 'register' | 'beat'
# -> 1; for 'beat', 0 when the node's registration was lost (Redis restarted, or a reaper took it).
HEARTBEAT = PRELUDE + r"""
if ARGV[4] == 'beat' and redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now_ms(), ARGV[1])
return 1
"""

# KEYS: nodes, draining
# ARGV: ttl ms, 'alive' | 'accepting' | 'dead' -> node names beaten within (or not within) the TTL; 'accepting': of
#       the alive ones, those not draining
NODES_BY_AGE = PRELUDE + r"""
local edge = now_ms() - tonumber(ARGV[1])
if ARGV[2] == 'dead' then return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', edge) end
local alive = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. edge, '+inf')
if ARGV[2] == 'alive' then return alive end
local accepting = {}
for _, node in ipairs(alive) do
  if redis.call('SISMEMBER', KEYS[2], node) == 0 then table.insert(accepting, node) end
end
return accepting
"""

# KEYS: reaper
# ARGV: lock owner, ttl ms, 'take' | 'give' -> 1 if the owner holds (or gave up) the lock
# Taking a lock one already holds succeeds: a retried take must not leave the lock unused until it expires.
REAPER_LOCK = PRELUDE + r"""
if ARGV[3] == 'take' then
  if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
  return redis.call('GET', KEYS[1]) == ARGV[1] and 1 or 0
end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""
