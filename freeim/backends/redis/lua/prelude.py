"""Lua helpers every script starts with."""

PRELUDE = r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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
