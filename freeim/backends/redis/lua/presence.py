"""Scripts that change presence and chans: attach, detach, join, leave, clear a chan."""

from .prelude import PRELUDE

# KEYS: node conns, client conns, client chans, online, events, node metas, then per declared chan: its nodes
# ARGV: node, client, conn, meta, events maxlen, max connections, declared chans...
# -> {'online'} | {'more'} | {'full'} | {'retry', chans...}
ATTACH = PRELUDE + r"""
local node, c, conn = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', KEYS[2], conn) == 1 then  -- run before: report as then, change nothing
  return {redis.call('HLEN', KEYS[2]) == 1 and 'online' or 'more'}
end
local nodes = redis.call('HVALS', KEYS[2])
if #nodes >= tonumber(ARGV[6]) then return {'full'} end
local here = false
for _, n in ipairs(nodes) do if n == node then here = true end end
local chans = {}
if not here then chans = redis.call('SMEMBERS', KEYS[3]) end
local index = declared(7, 6, 1)
local retry = undeclared(chans, index)
if retry then return retry end
redis.call('HSET', KEYS[1], conn, c)
redis.call('HSET', KEYS[2], conn, node)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[6], conn, ARGV[4]) end  -- for the reaper's offline event
for _, ch in ipairs(chans) do node_delta(KEYS[index[ch]], node, 1) end
if #nodes > 0 then return {'more'} end
redis.call('SADD', KEYS[4], c)
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', 'kind', 'online', 'client', c, 'meta', ARGV[4],
           'server', node)
return {'online'}
"""

# KEYS: node conns, node alive, client conns, client chans, online, events, node metas,
#       then per declared chan: its members, its nodes, its partition's chans
# ARGV: node, client, meta, events maxlen, 'own' | 'reap' (stop if the node is alive) | 'moved' (only if the
#       client has a connection on another node), n, n conns..., declared chans...
# -> {'offline'} | {'stay'} | {'gone'} (none of the conns was the client's here) | {'alive'} | {'parked'} (moved: the
#    client is on no other node; nothing changed) | {'retry', chans...}
DETACH = PRELUDE + r"""
local node, c, n = ARGV[1], ARGV[2], tonumber(ARGV[6])
if ARGV[5] == 'reap' and redis.call('EXISTS', KEYS[2]) == 1 then return {'alive'} end
local conns, leaving = {}, {}
for i = 7, 6 + n do
  table.insert(conns, ARGV[i])
  leaving[ARGV[i]] = true
end
local all, gone, left_here, left_anywhere = redis.call('HGETALL', KEYS[3]), 0, 0, 0
for i = 1, #all, 2 do
  if leaving[all[i]] and all[i + 1] == node then gone = gone + 1
  else
    left_anywhere = left_anywhere + 1
    if all[i + 1] == node then left_here = left_here + 1 end
  end
end
if gone == 0 then  -- not the client's connections here (any more): only the node's index may need it
  redis.call('HDEL', KEYS[1], unpack(conns))
  redis.call('HDEL', KEYS[7], unpack(conns))
  return {'gone'}
end
if ARGV[5] == 'moved' and left_anywhere == left_here then return {'parked'} end
local chans = {}
if left_here == 0 then chans = redis.call('SMEMBERS', KEYS[4]) end
local index = declared(7 + n, 7, 3)
local retry = undeclared(chans, index)
if retry then return retry end
redis.call('HDEL', KEYS[1], unpack(conns))
redis.call('HDEL', KEYS[7], unpack(conns))
redis.call('HDEL', KEYS[3], unpack(conns))
for _, ch in ipairs(chans) do node_delta(KEYS[index[ch] + 1], node, -1) end
if left_anywhere > 0 then return {'stay'} end
for _, ch in ipairs(chans) do
  if redis.call('SREM', KEYS[index[ch]], c) == 1 then chan_count(KEYS[index[ch] + 2], ch, -1) end
end
redis.call('DEL', KEYS[4])
redis.call('SREM', KEYS[5], c)
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[4], '*', 'kind', 'offline', 'client', c, 'meta', ARGV[3],
           'server', node)
return {'offline'}
"""

# KEYS: client conns, client chans, then per chan: its members, its nodes, its partition's chans
# ARGV: client, max chans, chans... -> 1 | 0 (the client is offline) | -1 (past max chans; nothing joined)
JOIN = PRELUDE + r"""
local c = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local new = {}
for i = 3, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 0 then table.insert(new, i) end
end
if redis.call('SCARD', KEYS[2]) + #new > tonumber(ARGV[2]) then return -1 end
local nodes, index = nodes_of(KEYS[1]), declared(3, 2, 3)
for _, i in ipairs(new) do
  local ch = ARGV[i]
  redis.call('SADD', KEYS[2], ch)
  if redis.call('SADD', KEYS[index[ch]], c) == 1 then chan_count(KEYS[index[ch] + 2], ch, 1) end
  for _, node in ipairs(nodes) do node_delta(KEYS[index[ch] + 1], node, 1) end
end
return 1
"""

# KEYS: client conns, client chans, then per chan: its members, its nodes, its partition's chans
# ARGV: client, chans...
LEAVE = PRELUDE + r"""
local c = ARGV[1]
local nodes, index = nodes_of(KEYS[1]), declared(2, 2, 3)
for i = 2, #ARGV do
  local ch = ARGV[i]
  if redis.call('SREM', KEYS[2], ch) == 1 then
    if redis.call('SREM', KEYS[index[ch]], c) == 1 then chan_count(KEYS[index[ch] + 2], ch, -1) end
    for _, node in ipairs(nodes) do node_delta(KEYS[index[ch] + 1], node, -1) end
  end
end
return 1
"""

# KEYS: chan members, chan nodes, its partition's chans, then per declared member: its chans
# ARGV: chan, declared members... -> {'done', members...} | {'retry', members...}
CLEAR_CHAN = PRELUDE + r"""
local members = redis.call('SMEMBERS', KEYS[1])
local index = declared(2, 3, 1)
local retry = undeclared(members, index)
if retry then return retry end
for _, c in ipairs(members) do redis.call('SREM', KEYS[index[c]], ARGV[1]) end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return tagged('done', members)
"""
