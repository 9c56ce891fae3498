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

-- The chan's keys live on while it has members; with none, they go once its newest ended record is old enough.
local function kept(members, ended, live)
  if live then
    redis.call('PERSIST', members)
    redis.call('PERSIST', ended)
  else
    redis.call('PEXPIRE', members, life)
    redis.call('PEXPIRE', ended, life)
  end
end

local i = 4 + m
while i <= #ARGV do
  local k, c, version, n = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local name, members, nodes, ended = ARGV[3 + k], KEYS[3 * k - 1], KEYS[3 * k], KEYS[3 * k + 1]
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
        if raw then redis.call('ZREM', ended, c) end
        if tonumber(redis.call('ZINCRBY', chans_key, 1, name)) == 1 then kept(members, ended, true) end
      end
    else
      redis.call('HSET', members, c, cjson.encode({v = version}))
      redis.call('ZADD', ended, now, c)
      -- Ended records older than their life go, a few each time one is written.
      for _, gone in ipairs(redis.call('ZRANGEBYSCORE', ended, '-inf', now - life, 'LIMIT', 0, 10)) do
        local record = redis.call('HGET', members, gone)
        if record and not cjson.decode(record).n then redis.call('HDEL', members, gone) end
        redis.call('ZREM', ended, gone)
      end
      if old.n then
        if tonumber(redis.call('ZINCRBY', chans_key, -1, name)) <= 0 then
          redis.call('ZREM', chans_key, name)
          kept(members, ended, false)
        end
      elseif not redis.call('ZSCORE', chans_key, name) then
        kept(members, ended, false)
      end
    end
  end
  i = i + 4 + math.max(n, 0)
end
return 1
"""
