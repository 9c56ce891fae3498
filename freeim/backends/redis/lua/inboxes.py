"""The script of inboxes (a client's, or a chan's stream): store one message, bounded in count, bytes and age."""

from .prelude import PRELUDE

# KEYS: inbox, inbox meta, where its reader is: a client's conns (conn -> node) or a chan's nodes (node -> n),
#       inbox ids
# ARGV: message id, frame, epoch if the inbox is new, max messages, max bytes, oldest time kept (ms),
#       inbox life (ms), meta life (ms), who gets a receipt when it is caught up on ('' for nobody),
#       'conns' | 'nodes' (which of the two KEYS[3] is)
# -> {epoch, offset, the nodes of the client's connections (each once per connection) or of the chan's members...}
# The meta hash holds the epoch 'e', the newest offset 't', the bytes held 'b' and the time (ms) of the oldest
# entry kept 'f'; the ids hash maps each message kept to "<offset> <who wants a receipt>" and lives as long
# as the inbox: run twice (a retried call), a message is found there and stored once; the common append
# reads no entry back, and a read receipt finds its sender without reading the inbox.
STORE_MESSAGE = PRELUDE + r"""
local inbox, meta, ids = KEYS[1], KEYS[2], KEYS[4]
local state = redis.call('HMGET', meta, 'e', 'f')
local epoch, first = state[1], tonumber(state[2]) or 0
if not epoch then
  epoch, first = ARGV[3], 0
  redis.call('HSET', meta, 'e', epoch, 't', 0, 'b', 0, 'f', 0)
end
local known = redis.call('HGET', ids, ARGV[1])
local offset = known and tonumber(string.match(known, '^(%d+)'))
if not offset then
  if redis.call('EXISTS', inbox) == 0 then  -- it expired (idle past its age): it holds nothing
    redis.call('DEL', ids)
    redis.call('HSET', meta, 'b', 0, 'f', 0)
    first = 0
  end
  local was_first = first
  offset = redis.call('HINCRBY', meta, 't', 1)
  local size = string.len(ARGV[2])
  local added = redis.call('XADD', inbox, '*', 'o', offset, 's', size, 'i', ARGV[1], 'p', ARGV[2], 'r', ARGV[9])
  if first == 0 then first = tonumber(string.match(added, '^(%d+)')) end
  local held, kept = redis.call('HINCRBY', meta, 'b', size), redis.call('XLEN', inbox)
  local max_kept, max_held, oldest = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  while kept > 0 and (kept > max_kept or held > max_held or first < oldest) do
    local entry = redis.call('XRANGE', inbox, '-', '+', 'COUNT', 1)[1]
    redis.call('XDEL', inbox, entry[1])
    redis.call('HDEL', ids, entry[2][6])
    held, kept = redis.call('HINCRBY', meta, 'b', -tonumber(entry[2][4])), kept - 1
    local next = redis.call('XRANGE', inbox, '-', '+', 'COUNT', 1)[1]
    first = next and tonumber(string.match(next[1], '^(%d+)')) or 0
  end
  redis.call('HSET', ids, ARGV[1], offset .. ' ' .. ARGV[9])
  if first ~= was_first then redis.call('HSET', meta, 'f', first) end
  redis.call('PEXPIRE', inbox, ARGV[7])
  redis.call('PEXPIRE', ids, ARGV[7])
  redis.call('PEXPIRE', meta, ARGV[8])
end
local answer = {epoch, offset}
for _, node in ipairs(redis.call(ARGV[10] == 'nodes' and 'HKEYS' or 'HVALS', KEYS[3])) do
  table.insert(answer, node)
end
return answer
"""

# KEYS: inbox (a client's, or a chan's stream), inbox meta
# ARGV: the epoch and offset the reader holds ('' and 0: none, it reads all that is kept)
# -> {epoch or false (no inbox), newest offset, the entries after the reader's offset, newest first}
# Offsets count one per entry and trimming takes the oldest, so what came after an offset of this epoch
# is the newest (top - offset) entries: a terminal that is up to date reads none, not the whole inbox.
READ_INBOX = PRELUDE + r"""
local state = redis.call('HMGET', KEYS[2], 'e', 't')
local epoch, top = state[1], tonumber(state[2]) or 0
if not epoch then return {false, 0, {}} end
local wanted, held = top, tonumber(ARGV[2])
if ARGV[1] == epoch and held <= top then wanted = top - held end  -- past the newest: a gap, all of it
if wanted <= 0 then return {epoch, top, {}} end
return {epoch, top, redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', wanted)}
"""
