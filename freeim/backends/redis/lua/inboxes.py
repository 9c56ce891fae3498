"""The script of inboxes (a client's, or a chan's stream): store one message, bounded in count, bytes and age."""

from .prelude import PRELUDE

# KEYS: inbox, inbox meta, where its reader is: a client's conns (conn -> node) or a chan's nodes (node -> n),
#       inbox ids
# ARGV: message id, frame, epoch if the inbox is new, max messages, max bytes, oldest time kept (ms),
#       inbox life (ms), meta life (ms), who gets a receipt when it is caught up on ('' for nobody),
#       'conns' | 'nodes' (which of the two KEYS[3] is)
# -> {epoch, offset, the nodes of the client's connections (each once per connection) or of the chan's members...}
# The meta hash holds the epoch 'e', the newest offset 't', the bytes held 'b', the time (ms) of the oldest
# entry kept 'f' and when the keys' lives were last set 'x'; the ids hash maps each message kept to
# "<offset> <who wants a receipt>": run twice (a retried call), a message is found there and stored once; the
# common append reads no entry back, and a read receipt finds its sender without reading the inbox.
# The append is counted in Lua and written back in one HSET, and the three lives are set again only an eighth of
# the way into them (each with that eighth added), so a key still lives at least its life after the last append:
# 7 commands where each append once ran 13, and 3 more per entry trimmed where it ran 5 (a Lua call's commands
# are most of its cost to Redis).
STORE_MESSAGE = PRELUDE + r"""
local inbox, meta, ids = KEYS[1], KEYS[2], KEYS[4]
local state = redis.call('HMGET', meta, 'e', 't', 'b', 'f', 'x')
local epoch = state[1] or ARGV[3]
local known = redis.call('HGET', ids, ARGV[1])
local offset = known and tonumber(string.match(known, '^(%d+)'))
if not offset then
  local held, first, renewed = tonumber(state[3]) or 0, tonumber(state[4]) or 0, tonumber(state[5]) or 0
  local kept = redis.call('XLEN', inbox)
  if kept == 0 then  -- new, emptied, or expired (idle past its age): it holds nothing, and its keys need lives
    redis.call('DEL', ids)
    held, first, renewed = 0, 0, 0
  end
  offset = (tonumber(state[2]) or 0) + 1
  local size = string.len(ARGV[2])
  local added = redis.call('XADD', inbox, '*', 'o', offset, 's', size, 'i', ARGV[1], 'p', ARGV[2], 'r', ARGV[9])
  local now = tonumber(string.match(added, '^(%d+)'))
  redis.call('HSET', ids, ARGV[1], offset .. ' ' .. ARGV[9])
  if first == 0 then first = now end
  held, kept = held + size, kept + 1
  local max_kept, max_held, oldest = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  while kept > 0 and (kept > max_kept or held > max_held or first < oldest) do
    local oldest_two = redis.call('XRANGE', inbox, '-', '+', 'COUNT', 2)
    local entry, next = oldest_two[1], oldest_two[2]
    redis.call('XDEL', inbox, entry[1])
    redis.call('HDEL', ids, entry[2][6])
    held, kept = held - tonumber(entry[2][4]), kept - 1
    first = next and tonumber(string.match(next[1], '^(%d+)')) or 0
  end
  local life, meta_life = tonumber(ARGV[7]), tonumber(ARGV[8])
  local slack = math.floor(life / 8)
  local renew = now - renewed >= slack
  if renew then renewed = now end
  redis.call('HSET', meta, 'e', epoch, 't', offset, 'b', held, 'f', first, 'x', renewed)
  if renew then
    redis.call('PEXPIRE', inbox, life + slack)
    redis.call('PEXPIRE', ids, life + slack)
    redis.call('PEXPIRE', meta, meta_life + slack)
  end
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
