"""Lua helpers every script starts with."""

PRELUDE = r"""
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- `command` on `key` with the items of `list`, a thousand at a time (unpack has a limit of a few thousand).
local function in_thousands(command, key, list)
  for first = 1, #list, 1000 do
    redis.call(command, key, unpack(list, first, math.min(first + 999, #list)))
  end
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

"""
