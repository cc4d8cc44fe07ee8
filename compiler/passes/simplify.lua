-- Common-subexpression elimination and dead-node removal.
-- Two nodes with the same op, attributes and inputs compute the same values: keep the first.
-- Nodes that no output, parameter gradient or input gradient needs are dropped.
local M = {}

local function serialize(v)
  local t = type(v)
  if t == "table" then
    if v.id and v.op then return "%" .. v.id end
    local keys = {}
    for k in pairs(v) do if k ~= "graph" then keys[#keys + 1] = k end end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. serialize(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "number" then
    return string.format("%.17g", v)
  end
  return tostring(v)
end
M.serialize = serialize

function M.cse(graph)
  local canon, seen = {}, {}
  local function c(n) return canon[n.id] or n end
  for _, n in ipairs(graph.nodes) do
    for k, x in ipairs(n.inputs) do n.inputs[k] = c(x) end
    if n.op ~= "input" and n.op ~= "param" then
      local ids = {}
      for k, x in ipairs(n.inputs) do ids[k] = x.id end
      local key = n.op .. "|" .. table.concat(ids, ",") .. "|" .. serialize(n.attrs) .. "|" .. serialize(n.shape)
      if seen[key] then canon[n.id] = seen[key] else seen[key] = n end
    end
  end
  for _, o in ipairs(graph.outputs) do o.node = c(o.node) end
  for i, g in pairs(graph.param_grads or {}) do graph.param_grads[i] = c(g) end
  for i, g in pairs(graph.input_grads or {}) do graph.input_grads[i] = c(g) end
end

-- the roots that must be computed
function M.roots(graph)
  local roots = {}
  for _, o in ipairs(graph.outputs) do roots[#roots + 1] = o.node end
  for _, g in pairs(graph.param_grads or {}) do roots[#roots + 1] = g end
  for _, g in pairs(graph.input_grads or {}) do roots[#roots + 1] = g end
  return roots
end

-- for the rewriting passes: how many schedule nodes read each node (by id), and which nodes are
-- roots (outputs and gradients: they must stay materialised)
function M.uses(graph)
  local uses, is_root = {}, {}
  for _, n in ipairs(graph.schedule) do
    for _, x in ipairs(n.inputs) do uses[x.id] = (uses[x.id] or 0) + 1 end
  end
  for _, r in ipairs(M.roots(graph)) do is_root[r.id] = true end
  return uses, is_root
end

-- the nodes that read each node, by id, in schedule order
function M.readers(graph)
  local readers = {}
  for _, n in ipairs(graph.schedule) do
    for _, x in ipairs(n.inputs) do
      readers[x.id] = readers[x.id] or {}
      table.insert(readers[x.id], n)
    end
  end
  return readers
end

-- drops the nodes whose ids are keys of `gone` from the schedule
function M.drop(graph, gone)
  local kept = {}
  for _, n in ipairs(graph.schedule) do if not gone[n.id] then kept[#kept + 1] = n end end
  graph.schedule = kept
end

function M.dce(graph)
  local live = {}
  local stack = M.roots(graph)
  while #stack > 0 do
    local n = table.remove(stack)
    if not live[n.id] then
      live[n.id] = true
      for _, x in ipairs(n.inputs) do stack[#stack + 1] = x end
    end
  end
  local kept = {}
  for _, n in ipairs(graph.nodes) do
    if live[n.id] or n.op == "param" or n.op == "input" then kept[#kept + 1] = n end
  end
  graph.schedule = kept
end

function M.run(graph)
  M.cse(graph)
  M.dce(graph)
end

return M
