"""Scripts that change a client's presence and chans, each on the client's own keys and its partition's: one slot.

The client's keys are the truth: its connections (conn -> node), its chans, and what it left (``left``: the chans
of its last session, and those it left, kept for a while). A chan's record of its members and their nodes is a
projection of that truth (:mod:`.chans`): each script here that changes what the projection must show gives the
client a new *version* (Redis's time in µs, past the last one given), marks the client in its partition's
``dirty`` set under that version, and answers with the truth of that version for the caller to push to the chans
(``project``), then to settle (``settle``). Pushes are applied newest version first and older ones are ignored, so
pushes of steps that ran at once, or twice, or late, leave what the newest truth says. A client still marked long
after its version was given had its pushes cut short (the caller died): the reaper pushes its truth again.

Every script here takes the same keys, :data:`CLIENT_KEYS`: the client's conns, chans, left and version, and its
partition's online set, events stream and dirty set.

A script that pushes answers ``{answer, version, n, n nodes..., m, m chans..., chans left...}``: the client's nodes
and its chans for live records, the chans it left for ended ones; ``{answer, ''}`` when nothing is to be pushed.
"""

from .prelude import PRELUDE

#: The keys of every script here, in their order.
CLIENT_KEYS = ("conns", "chans", "left", "ver")

CLIENT = PRELUDE + r"""
local conns_key, chans_key, left_key, ver_key, online_key, events_key, dirty_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]

-- A new version of the client (ARGV[2] its id), marked dirty: Redis's time in µs, past the last one given. The
-- last is kept `life` ms, well past any push still on its way; after that, time alone is past it.
local function next_version(c, life)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', ver_key) or '0')
  if now <= last then now = last + 1 end
  local version = string.format('%.0f', now)
  redis.call('SET', ver_key, version, 'PX', life)
  redis.call('ZADD', dirty_key, version, c)
  return version
end

-- The answer that makes the caller push `live` (with the client's nodes) and `ended`, at a new version.
local function truth(answer, c, life, live, ended)
  if #live == 0 and #ended == 0 then return {answer, ''} end
  local reply, nodes = {answer, next_version(c, life)}, nodes_of(conns_key)
  table.insert(reply, #nodes)
  for _, node in ipairs(nodes) do table.insert(reply, node) end
  table.insert(reply, #live)
  for _, ch in ipairs(live) do table.insert(reply, ch) end
  for _, ch in ipairs(ended) do table.insert(reply, ch) end
  return reply
end

-- The whole truth, pushed again: the chans, and what was left and not joined again.
local function all_truth(answer, c, life)
  local live = redis.call('SMEMBERS', chans_key)
  return truth(answer, c, life, live, redis.call('SDIFF', left_key, chans_key))
end

local function leave_behind(chans, life)
  if #chans == 0 then return end
  in_thousands('SADD', left_key, chans)
  redis.call('PEXPIRE', left_key, life)
end
"""

# ARGV: node, client, conn, meta, events maxlen, max connections, version life ms
# -> {'online' | 'more', version...} | {'full'}
ATTACH = CLIENT + r"""
local node, c, conn, life = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[7])
local before = nodes_of(conns_key)
if redis.call('HEXISTS', conns_key, conn) == 1 then  -- run before (a retried call): its pushes again, they may be
  return all_truth(redis.call('HLEN', conns_key) == 1 and 'online' or 'more', c, life)  -- undone
end
if redis.call('HLEN', conns_key) >= tonumber(ARGV[6]) then return {'full'} end
redis.call('HSET', conns_key, conn, node)
local answer = 'more'
if #before == 0 then
  answer = 'online'
  redis.call('SADD', online_key, c)
  redis.call('XADD', events_key, 'MAXLEN', '~', ARGV[5], '*', 'kind', 'online', 'client', c, 'meta', ARGV[4],
             'server', node)
end
for _, n in ipairs(before) do
  if n == node then return {answer, ''} end  -- the client's nodes are as they were: nothing to push
end
return truth(answer, c, life, redis.call('SMEMBERS', chans_key), {})
"""

# ARGV: node, client, meta, events maxlen, 'own' | 'moved' (only if the client has a connection on another node),
#       version life ms, left life ms, n, n conns...
# -> {'offline' | 'stay', version...} | {'gone', version...} (none of the conns was the client's here: its truth, to
#    push again, in case a detach before was cut short) | {'parked'} (moved: the client is on no other node; nothing
#    changed)
DETACH = CLIENT + r"""
local node, c, life, n = ARGV[1], ARGV[2], tonumber(ARGV[6]), tonumber(ARGV[8])
local leaving = {}
for i = 9, 8 + n do leaving[ARGV[i]] = true end
local all, gone, left_here, left_anywhere = redis.call('HGETALL', conns_key), {}, 0, 0
for i = 1, #all, 2 do
  if leaving[all[i]] and all[i + 1] == node then table.insert(gone, all[i])
  else
    left_anywhere = left_anywhere + 1
    if all[i + 1] == node then left_here = left_here + 1 end
  end
end
if #gone == 0 then return all_truth('gone', c, life) end
if ARGV[5] == 'moved' and left_anywhere == left_here then return {'parked'} end
in_thousands('HDEL', conns_key, gone)
if left_anywhere > 0 then
  if left_here > 0 then return {'stay', ''} end
  return truth('stay', c, life, redis.call('SMEMBERS', chans_key), {})
end
local chans = redis.call('SMEMBERS', chans_key)
leave_behind(chans, tonumber(ARGV[7]))
redis.call('DEL', chans_key)
redis.call('SREM', online_key, c)
redis.call('XADD', events_key, 'MAXLEN', '~', ARGV[4], '*', 'kind', 'offline', 'client', c, 'meta', ARGV[3],
           'server', node)
return truth('offline', c, life, {}, chans)
"""

# ARGV: client, max chans, version life ms, chans...
# -> {1, version...} | {0} (the client is offline) | {-1} (past max chans; nothing joined)
JOIN = CLIENT + r"""
local c = ARGV[1]
if redis.call('EXISTS', conns_key) == 0 then return {0} end
local chans, new = {}, 0
for i = 4, #ARGV do
  table.insert(chans, ARGV[i])
  if redis.call('SISMEMBER', chans_key, ARGV[i]) == 0 then new = new + 1 end
end
if redis.call('SCARD', chans_key) + new > tonumber(ARGV[2]) then return {-1} end
in_thousands('SADD', chans_key, chans)
return truth(1, c, tonumber(ARGV[3]), chans, {})  -- all of them: a join retried pushes what its first run did not
"""

# ARGV: client, version life ms, left life ms, '1' to end every chan given (clearing a chan) or '0', chans...
# -> {1, version...}
LEAVE = CLIENT + r"""
local c, ended = ARGV[1], {}
for i = 5, #ARGV do
  local ch = ARGV[i]
  -- A chan the client was in, or had left (a leave retried pushes what its first run did not).
  if redis.call('SREM', chans_key, ch) == 1 or ARGV[4] == '1' or redis.call('SISMEMBER', left_key, ch) == 1 then
    table.insert(ended, ch)
  end
end
leave_behind(ended, tonumber(ARGV[3]))
return truth(1, c, tonumber(ARGV[2]), {}, ended)
"""

# ARGV: client, version life ms -> {'sync', version...}: the client's whole truth, to push again (the reaper, for a
# client whose pushes were cut short)
RESYNC = CLIENT + r"""
return all_truth('sync', ARGV[1], tonumber(ARGV[2]))
"""

# KEYS: the partition's dirty set
# ARGV: pairs of client, version -> 1: each client no longer marked, unless a newer version marked it meanwhile
SETTLE = PRELUDE + r"""
for i = 1, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) == ARGV[i + 1] then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return 1
"""
