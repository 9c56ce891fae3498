"""The script that keeps chans' records of their members: a projection of each member's truth (:mod:`.presence`).

A chan's ``members`` hash holds, per client, the record of the newest version pushed: ``{"v": version, "n":
[nodes]}`` while it is a member, ``{"v": version}`` once it is not (ended). The chan's ``nodes`` hash counts the
members connected to each node (what a chan message is sent by), and its partition's ``chans`` zset its members:
both follow the records. An ended record stays :data:`ENDED_LIFE` ms (its time in the chan's ``ended`` zset), long
past any older push still on its way, then goes; a chan with no member left expires after as long.
"""

from .prelude import PRELUDE

# KEYS: the partition's chans, then per chan: its members, its nodes, its ended
# ARGV: now (ms), ended life (ms), m, m chan names, then records: chan number (1..m), client, version,
#       node count (-1: ended), nodes...
# -> 1
PROJECT = PRELUDE + r"""
local chans_key, now, life, m = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local touched = {}
local i = 4 + m
while i <= #ARGV do
  local k, c, version, n = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local name, members, nodes, ended = ARGV[3 + k], KEYS[3 * k - 1], KEYS[3 * k], KEYS[3 * k + 1]
  touched[k] = true
  local raw = redis.call('HGET', members, c)
  local old = raw and cjson.decode(raw) or {v = '0'}
  if tonumber(version) > tonumber(old.v) then
    if old.n then
      for _, node in ipairs(old.n) do node_delta(nodes, node, -1) end
    end
    if n >= 0 then
      local new = {}
      for j = 1, n do
        table.insert(new, ARGV[i + 3 + j])
        node_delta(nodes, ARGV[i + 3 + j], 1)
      end
      redis.call('HSET', members, c, cjson.encode({v = version, n = new}))
      if not old.n then
        redis.call('ZINCRBY', chans_key, 1, name)
        redis.call('ZREM', ended, c)
      end
    else
      redis.call('HSET', members, c, cjson.encode({v = version}))
      redis.call('ZADD', ended, now, c)
      if old.n then chan_count(chans_key, name, -1) end
    end
  end
  i = i + 4 + math.max(n, 0)
end
for k in pairs(touched) do
  local members, ended = KEYS[3 * k - 1], KEYS[3 * k + 1]
  for _, c in ipairs(redis.call('ZRANGEBYSCORE', ended, '-inf', now - life, 'LIMIT', 0, 10)) do
    local raw = redis.call('HGET', members, c)
    if raw and not cjson.decode(raw).n then redis.call('HDEL', members, c) end
    redis.call('ZREM', ended, c)
  end
  if redis.call('ZSCORE', chans_key, ARGV[3 + k]) then
    redis.call('PERSIST', members)
  else  -- nobody in it: what it keeps goes once the newest ended record is old enough
    redis.call('PEXPIRE', members, life)
    redis.call('PEXPIRE', ended, life)
  end
end
return 1
"""
