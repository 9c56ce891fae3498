"""The script of inboxes (a client's, or a chan's stream): store one message, bounded in count, bytes and age."""

from .prelude import PRELUDE

# KEYS: inbox, inbox meta, where its reader is: a client's conns (conn -> node) or a chan's nodes (node -> n)
# ARGV: message id, frame, epoch if the inbox is new, max messages, max bytes, oldest time kept (ms),
#       inbox life (ms), meta life (ms), who gets a receipt when it is caught up on ('' for nobody),
#       'conns' | 'nodes' (which of the two KEYS[3] is)
# -> {epoch, offset, the nodes of the client's connections (each once per connection) or of the chan's members...}
# Run twice (a retried call), the message is found among the newest and stored once.
STORE_MESSAGE = PRELUDE + r"""
local inbox, meta = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'e')
local offset = nil
if epoch then
  for _, entry in ipairs(redis.call('XREVRANGE', inbox, '+', '-', 'COUNT', 32)) do
    if entry[2][6] == ARGV[1] then offset = tonumber(entry[2][2]) end
  end
else
  epoch = ARGV[3]
  redis.call('HSET', meta, 'e', epoch, 't', 0, 'b', 0)
end
if not offset then
  if redis.call('EXISTS', inbox) == 0 then redis.call('HSET', meta, 'b', 0) end  -- it expired: it holds nothing
  offset = redis.call('HINCRBY', meta, 't', 1)
  local size = string.len(ARGV[2])
  redis.call('XADD', inbox, '*', 'o', offset, 's', size, 'i', ARGV[1], 'p', ARGV[2], 'r', ARGV[9])
  local held, kept = redis.call('HINCRBY', meta, 'b', size), redis.call('XLEN', inbox)
  local max_kept, max_held, oldest = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  while kept > 0 do
    local first = redis.call('XRANGE', inbox, '-', '+', 'COUNT', 1)[1]
    local ms = tonumber(string.match(first[1], '^(%d+)'))
    if kept <= max_kept and held <= max_held and ms >= oldest then break end
    redis.call('XDEL', inbox, first[1])
    held, kept = redis.call('HINCRBY', meta, 'b', -tonumber(first[2][4])), kept - 1
  end
  redis.call('PEXPIRE', inbox, ARGV[7])
  redis.call('PEXPIRE', meta, ARGV[8])
end
local answer = {epoch, offset}
for _, node in ipairs(redis.call(ARGV[10] == 'nodes' and 'HKEYS' or 'HVALS', KEYS[3])) do
  table.insert(answer, node)
end
return answer
"""
