"""Lua sources of the Redis store; the key layout they work on is in :mod:`.keys`.

Every script gets each key it touches in ``KEYS`` (none is built from ``ARGV``), reads and
checks all it needs before its first write, so a script that refuses leaves nothing half
done, and is safe to run twice: redis-py retries a command whose reply timed out, after
Redis may have run it. Presence is kept per connection id for that reason.

Where a script needs the keys of chans it only learns about in Redis (the chans of a client,
the members of a chan), the caller declares the ones it expects; if Redis holds others, the
script writes nothing and answers ``{'retry', names...}`` so the caller declares those.
"""

PRELUDE = r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- `tag` followed by the items of `list` (unpack has a small limit; a chan may have many members).
local function tagged(tag, list)
  local answer = {tag}
  for _, item in ipairs(list) do table.insert(answer, item) end
  return answer
end

-- The declared names ARGV[first..], each mapped to the index of its first key: they follow
-- the script's `fixed` keys, `width` keys a name.
local function declared(first, fixed, width)
  local index = {}
  for i = first, #ARGV do index[ARGV[i]] = fixed + 1 + (i - first) * width end
  return index
end

-- Every one of `names` declared? Else the answer that makes the caller declare them.
local function undeclared(names, index)
  for _, name in ipairs(names) do
    if index[name] == nil then return tagged('retry', names) end
  end
  return nil
end

local function node_delta(nodes_key, node, delta)
  if redis.call('HINCRBY', nodes_key, node, delta) <= 0 then redis.call('HDEL', nodes_key, node) end
end

-- Nodes holding a connection of a client (its `conns` hash: conn -> node), each once.
local function nodes_of(conns_key)
  local seen, nodes = {}, {}
  for _, node in ipairs(redis.call('HVALS', conns_key)) do
    if not seen[node] then seen[node] = true; table.insert(nodes, node) end
  end
  return nodes
end

local function chan_count(chans_key, ch, delta)
  if tonumber(redis.call('ZINCRBY', chans_key, delta, ch)) <= 0 then redis.call('ZREM', chans_key, ch) end
end
"""

# KEYS: node conns, client conns, client chans, online, events, then per declared chan: its nodes
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
local index = declared(7, 5, 1)
local retry = undeclared(chans, index)
if retry then return retry end
redis.call('HSET', KEYS[1], conn, c)
redis.call('HSET', KEYS[2], conn, node)
for _, ch in ipairs(chans) do node_delta(KEYS[index[ch]], node, 1) end
if #nodes > 0 then return {'more'} end
redis.call('SADD', KEYS[4], c)
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', 'kind', 'online', 'client', c, 'meta', ARGV[4],
           'server', node)
return {'online'}
"""

# KEYS: node conns, node alive, client conns, client chans, online, events, chans,
#       then per declared chan: its members, its nodes
# ARGV: node, client, meta, events maxlen, 'own' | 'reap' (stop if the node is alive), n, n conns...,
#       declared chans...
# -> {'offline'} | {'stay'} | {'gone'} (none of the conns was the client's here) | {'alive'} | {'retry', chans...}
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
  return {'gone'}
end
local chans = {}
if left_here == 0 then chans = redis.call('SMEMBERS', KEYS[4]) end
local index = declared(7 + n, 7, 2)
local retry = undeclared(chans, index)
if retry then return retry end
redis.call('HDEL', KEYS[1], unpack(conns))
redis.call('HDEL', KEYS[3], unpack(conns))
for _, ch in ipairs(chans) do node_delta(KEYS[index[ch] + 1], node, -1) end
if left_anywhere > 0 then return {'stay'} end
for _, ch in ipairs(chans) do
  if redis.call('SREM', KEYS[index[ch]], c) == 1 then chan_count(KEYS[7], ch, -1) end
end
redis.call('DEL', KEYS[4])
redis.call('SREM', KEYS[5], c)
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[4], '*', 'kind', 'offline', 'client', c, 'meta', ARGV[3],
           'server', node)
return {'offline'}
"""

# KEYS: client conns, client chans, chans, then per chan: its members, its nodes
# ARGV: client, max chans, chans... -> 1 | 0 (the client is offline) | -1 (past max chans; nothing joined)
JOIN = PRELUDE + r"""
local c = ARGV[1]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local new = {}
for i = 3, #ARGV do
  if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 0 then table.insert(new, i) end
end
if redis.call('SCARD', KEYS[2]) + #new > tonumber(ARGV[2]) then return -1 end
local nodes, index = nodes_of(KEYS[1]), declared(3, 3, 2)
for _, i in ipairs(new) do
  local ch = ARGV[i]
  redis.call('SADD', KEYS[2], ch)
  if redis.call('SADD', KEYS[index[ch]], c) == 1 then chan_count(KEYS[3], ch, 1) end
  for _, node in ipairs(nodes) do node_delta(KEYS[index[ch] + 1], node, 1) end
end
return 1
"""

# KEYS: client conns, client chans, chans, then per chan: its members, its nodes
# ARGV: client, chans...
LEAVE = PRELUDE + r"""
local c = ARGV[1]
local nodes, index = nodes_of(KEYS[1]), declared(2, 3, 2)
for i = 2, #ARGV do
  local ch = ARGV[i]
  if redis.call('SREM', KEYS[2], ch) == 1 then
    if redis.call('SREM', KEYS[index[ch]], c) == 1 then chan_count(KEYS[3], ch, -1) end
    for _, node in ipairs(nodes) do node_delta(KEYS[index[ch] + 1], node, -1) end
  end
end
return 1
"""

# KEYS: chan members, chan nodes, chans, then per declared member: its chans
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

# KEYS: node conns, node alive, node inbox, node inbox size, node inbox index, nodes
# ARGV: node, force -> 1 when the node's keys are gone
FORGET_NODE = PRELUDE + r"""
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('HLEN', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
-- A reaped node's inbox goes too; a node of this name that cleans up after itself keeps reading its inbox.
if ARGV[2] ~= '1' then redis.call('DEL', KEYS[3], KEYS[4], KEYS[5]) end
redis.call('ZREM', KEYS[6], ARGV[1])
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

# KEYS: nodes
# ARGV: ttl ms, 'alive' | 'dead' -> node names beaten within (or not within) the TTL
NODES_BY_AGE = PRELUDE + r"""
local edge = now_ms() - tonumber(ARGV[1])
if ARGV[2] == 'alive' then return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. edge, '+inf') end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', edge)
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

# KEYS: events
# ARGV: group -> 1; creates the events stream and the group (from the start) if missing
ENSURE_GROUP = PRELUDE + r"""
pcall(redis.call, 'XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
return 1
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

SCRIPTS = {
    "attach": ATTACH,
    "detach": DETACH,
    "join": JOIN,
    "leave": LEAVE,
    "clear_chan": CLEAR_CHAN,
    "forget_node": FORGET_NODE,
    "heartbeat": HEARTBEAT,
    "nodes_by_age": NODES_BY_AGE,
    "reaper_lock": REAPER_LOCK,
    "ensure_group": ENSURE_GROUP,
    "append": APPEND,
    "trim_inbox": TRIM_INBOX,
}
