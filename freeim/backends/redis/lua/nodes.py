"""Scripts of node liveness: heartbeats, the age of registrations, the reaper's lock, forgetting a node.

A node's own keys and the registry of nodes (``{g}``) are in two slots: a change of both is two steps, the
node's first (:mod:`..nodes`)."""

from .prelude import PRELUDE

# KEYS: node conns, node alive, node inbox, node inbox size, node inbox index (one node's: one slot)
# ARGV: force -> 1 when the node's keys are gone; the caller then takes it off the registry (:data:`UNLIST_NODE`)
FORGET_NODE = PRELUDE + r"""
if ARGV[1] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('HLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
-- A reaped node's inbox goes too; a node of this name that cleans up after itself keeps reading its inbox.
if ARGV[1] ~= '1' then redis.call('DEL', KEYS[3], KEYS[4], KEYS[5]) end
return 1
"""

# KEYS: node alive
# ARGV: boot id, ttl ms, 'register' | 'beat'
# -> 1; for 'beat', 0 when the node's registration was lost (Redis restarted, or a reaper took it). The beat is
#    marked in the registry too (:data:`MARK_BEAT`), in the same round trip.
HEARTBEAT = PRELUDE + r"""
if ARGV[3] == 'beat' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: nodes
# ARGV: node -> 1: the node's last beat, at Redis's time (one clock for every node's beats)
MARK_BEAT = PRELUDE + r"""
redis.call('ZADD', KEYS[1], now_ms(), ARGV[1])
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

