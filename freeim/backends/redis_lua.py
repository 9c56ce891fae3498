"""Lua sources of the Redis store: every multi-key update runs atomically in Redis.

Key layout (``p`` is ``FREEIM["REDIS_PREFIX"]``; ``n`` a node, ``c`` a client id,
``ch`` a chan), all maintained by these scripts:

===========================  =======  ==============================================
key                          type     holds
===========================  =======  ==============================================
``p:tok:<token>``            string   a connect token's JSON record (``SET EX``; ``GETDEL``)
``p:nodes``                  zset     node -> last heartbeat (Redis server time, ms)
``p:node:n:alive``           string   the node process's boot id (``PX`` heartbeat TTL)
``p:node:n:clients``         hash     client -> connection count on that node
``p:node:n:inbox``           stream   the node's payload batches (``XADD MAXLEN ~``)
``p:online``                 hash     client -> total connection count
``p:client:c:nodes``         hash     node -> connection count of that client
``p:client:c:chans``         set      the client's chans
``p:chan:ch``                set      the chan's members
``p:chan:ch:nodes``          hash     node -> members of the chan connected there
``p:chans``                  zset     chan -> member count
``p:events``                 stream   online/offline events for ``freeim_events``
``p:reaper``                 string   the node currently reaping dead peers (``NX PX``)
===========================  =======  ==============================================

Scripts compute key names from the prefix (``ARGV[1]``), so this layout needs
one Redis server (or a primary with replicas), not Redis Cluster.
"""

PRELUDE = r"""
local p = ARGV[1]
local function k(...) return p .. ':' .. table.concat({...}, ':') end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function event(kind, c, meta, node, maxlen)
  redis.call('XADD', k('events'), 'MAXLEN', '~', maxlen, '*', 'kind', kind, 'client', c, 'meta', meta,
             'server', node)
end

local function chan_node_delta(ch, node, delta)
  local key = k('chan', ch, 'nodes')
  if redis.call('HINCRBY', key, node, delta) <= 0 then redis.call('HDEL', key, node) end
end

local function leave_one(c, ch, nodes)
  if redis.call('SREM', k('chan', ch), c) == 0 then return end
  if tonumber(redis.call('ZINCRBY', k('chans'), -1, ch)) <= 0 then redis.call('ZREM', k('chans'), ch) end
  redis.call('SREM', k('client', c, 'chans'), ch)
  for _, node in ipairs(nodes) do chan_node_delta(ch, node, -1) end
end

-- Take `count` connections of client `c` off `node`; 1 if the client went offline.
local function release(node, c, count, meta, maxlen)
  local chans = redis.call('SMEMBERS', k('client', c, 'chans'))
  if redis.call('HINCRBY', k('client', c, 'nodes'), node, -count) <= 0 then
    redis.call('HDEL', k('client', c, 'nodes'), node)
    for _, ch in ipairs(chans) do chan_node_delta(ch, node, -1) end
  end
  if redis.call('HINCRBY', k('online'), c, -count) > 0 then return 0 end
  redis.call('HDEL', k('online'), c)
  redis.call('DEL', k('client', c, 'nodes'))
  for _, ch in ipairs(chans) do leave_one(c, ch, {}) end
  event('offline', c, meta, node, maxlen)
  return 1
end
"""

# ARGV: prefix, node, client, meta, events maxlen -> 1 if the client came online
ADD_CONNECTION = PRELUDE + r"""
local node, c = ARGV[2], ARGV[3]
redis.call('HINCRBY', k('node', node, 'clients'), c, 1)
if redis.call('HINCRBY', k('client', c, 'nodes'), node, 1) == 1 then
  for _, ch in ipairs(redis.call('SMEMBERS', k('client', c, 'chans'))) do chan_node_delta(ch, node, 1) end
end
if redis.call('HINCRBY', k('online'), c, 1) > 1 then return 0 end
event('online', c, ARGV[4], node, ARGV[5])
return 1
"""

# ARGV: prefix, node, client, meta, events maxlen -> 1 if the client went offline
REMOVE_CONNECTION = PRELUDE + r"""
local node, c = ARGV[2], ARGV[3]
local here = tonumber(redis.call('HGET', k('node', node, 'clients'), c) or '0')
if here <= 0 then return 0 end
if here == 1 then redis.call('HDEL', k('node', node, 'clients'), c)
else redis.call('HINCRBY', k('node', node, 'clients'), c, -1) end
return release(node, c, 1, ARGV[4], ARGV[5])
"""

# ARGV: prefix, node, events maxlen, force ('1': even if the node looks alive), clients...
# -> the clients that went offline, or nil when the node is alive again (a reaper must stop).
DROP_CLIENTS = PRELUDE + r"""
local node = ARGV[2]
if ARGV[4] ~= '1' and redis.call('EXISTS', k('node', node, 'alive')) == 1 then return nil end
local gone = {}
for i = 5, #ARGV do
  local c = ARGV[i]
  local here = tonumber(redis.call('HGET', k('node', node, 'clients'), c) or '0')
  redis.call('HDEL', k('node', node, 'clients'), c)
  if here > 0 and release(node, c, here, '', ARGV[3]) == 1 then table.insert(gone, c) end
end
return gone
"""

# ARGV: prefix, node, force -> 1 when the node's keys are gone
FORGET_NODE = PRELUDE + r"""
local node = ARGV[2]
if ARGV[3] ~= '1' and redis.call('EXISTS', k('node', node, 'alive')) == 1 then return 0 end
if redis.call('HLEN', k('node', node, 'clients')) > 0 then return 0 end
redis.call('DEL', k('node', node, 'clients'), k('node', node, 'alive'))
-- A reaped node's inbox goes too; a node of this name that cleans up after itself keeps reading its inbox.
if ARGV[3] ~= '1' then redis.call('DEL', k('node', node, 'inbox')) end
redis.call('ZREM', k('nodes'), node)
return 1
"""

# ARGV: prefix, node, boot id, ttl ms, mode ('register' | 'beat')
# -> 1; for 'beat', 0 when the node's registration was lost (Redis restarted, or a reaper took it).
HEARTBEAT = PRELUDE + r"""
local node, boot = ARGV[2], ARGV[3]
if ARGV[5] == 'beat' and redis.call('GET', k('node', node, 'alive')) ~= boot then return 0 end
redis.call('SET', k('node', node, 'alive'), boot, 'PX', ARGV[4])
redis.call('ZADD', k('nodes'), now_ms(), node)
return 1
"""

# ARGV: prefix, ttl ms, 'alive' | 'dead' -> node names beaten within (or not within) the TTL
NODES_BY_AGE = PRELUDE + r"""
local edge = now_ms() - tonumber(ARGV[2])
if ARGV[3] == 'alive' then return redis.call('ZRANGEBYSCORE', k('nodes'), '(' .. edge, '+inf') end
return redis.call('ZRANGEBYSCORE', k('nodes'), '-inf', edge)
"""

# ARGV: prefix, client, chans... -> 0 if the client is offline
JOIN = PRELUDE + r"""
local c = ARGV[2]
if redis.call('HEXISTS', k('online'), c) == 0 then return 0 end
local nodes = redis.call('HKEYS', k('client', c, 'nodes'))
for i = 3, #ARGV do
  local ch = ARGV[i]
  if redis.call('SADD', k('chan', ch), c) == 1 then
    redis.call('ZINCRBY', k('chans'), 1, ch)
    redis.call('SADD', k('client', c, 'chans'), ch)
    for _, node in ipairs(nodes) do chan_node_delta(ch, node, 1) end
  end
end
return 1
"""

# ARGV: prefix, client, chans...
LEAVE = PRELUDE + r"""
local c = ARGV[2]
local nodes = redis.call('HKEYS', k('client', c, 'nodes'))
for i = 3, #ARGV do leave_one(c, ARGV[i], nodes) end
return 1
"""

# ARGV: prefix, chan -> the members it had
CLEAR_CHAN = PRELUDE + r"""
local ch = ARGV[2]
local members = redis.call('SMEMBERS', k('chan', ch))
for _, c in ipairs(members) do redis.call('SREM', k('client', c, 'chans'), ch) end
redis.call('DEL', k('chan', ch), k('chan', ch, 'nodes'))
redis.call('ZREM', k('chans'), ch)
return members
"""

# ARGV: prefix, lock owner, ttl ms, 'take' | 'give'
REAPER_LOCK = PRELUDE + r"""
if ARGV[4] == 'take' then
  return redis.call('SET', k('reaper'), ARGV[2], 'NX', 'PX', ARGV[3]) and 1 or 0
end
if redis.call('GET', k('reaper')) == ARGV[2] then redis.call('DEL', k('reaper')) end
return 1
"""

# ARGV: prefix, group -> 1; creates the events stream and the group (from the start) if missing
ENSURE_GROUP = PRELUDE + r"""
pcall(redis.call, 'XGROUP', 'CREATE', k('events'), ARGV[2], '0', 'MKSTREAM')
return 1
"""

SCRIPTS = {
    "ensure_group": ENSURE_GROUP,
    "add_connection": ADD_CONNECTION,
    "remove_connection": REMOVE_CONNECTION,
    "drop_clients": DROP_CLIENTS,
    "forget_node": FORGET_NODE,
    "heartbeat": HEARTBEAT,
    "nodes_by_age": NODES_BY_AGE,
    "join": JOIN,
    "leave": LEAVE,
    "clear_chan": CLEAR_CHAN,
    "reaper_lock": REAPER_LOCK,
}
