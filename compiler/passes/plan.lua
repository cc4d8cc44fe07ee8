-- Memory planning: one arena for the whole forward + backward schedule.
-- Each materialised node gets a buffer; views (reshape, detach) share their input's buffer.
-- A buffer lives from the node that writes it to the last node that reads it (outputs and
-- gradients to the end). Buffers whose sizes scale alike (the same monomial in the run-time
-- sizes: B, T, B*T, none) share one region of the arena, where they are placed best-fit by
-- lifetime, so every offset is (constant) x (monomial): exact for any batch size.
-- An op that needs scratch memory while it runs (op.workspace(n): elements, a monomial) gets a
-- second buffer that lives for its own kernel only.
local size = require("compiler.size")
local ops = require("compiler.ops")

local M = {}
local ALIGN = 16 -- elements: 64 bytes for float

local function align(u) return math.ceil(u / ALIGN) * ALIGN end

function M.run(graph, reference)
  local sched = graph.schedule
  local pos, root = {}, {}
  for i, n in ipairs(sched) do
    pos[n.id] = i
    if ops[n.op].alias then root[n.id] = root[n.inputs[1].id] or n.inputs[1] else root[n.id] = n end
  end
  graph.root = root
  local last = #sched + 1
  local bufs, by_root, by_work = {}, {}, {}
  for _, n in ipairs(sched) do
    if not ops[n.op].leaf and not ops[n.op].alias then
      local m = size.numel(n.shape)
      local b = { node = n, start = pos[n.id], stop = pos[n.id], class = size.signature(m), mono = size.mono(1, m.s), units = align(m.c) }
      bufs[#bufs + 1] = b
      by_root[n.id] = b
    end
    local ws = ops[n.op].workspace and ops[n.op].workspace(n)
    if ws and not (size.is_const(ws) and ws.c == 0) then
      local b = { node = n, workspace = ws, start = pos[n.id], stop = pos[n.id], class = size.signature(ws), mono = size.mono(1, ws.s),
        units = align(ws.c) }
      bufs[#bufs + 1] = b
      by_work[n.id] = b
    end
  end
  local function use(n, at)
    local b = by_root[root[n.id].id]
    if b and at > b.stop then b.stop = at end
  end
  for i, n in ipairs(sched) do
    for _, x in ipairs(n.inputs) do use(x, i) end
  end
  for _, r in ipairs(require("compiler.passes.simplify").roots(graph)) do use(r, last) end

  -- group by class, place best-fit (largest first)
  local classes, class_list = {}, {}
  for _, b in ipairs(bufs) do
    if not classes[b.class] then
      classes[b.class] = { sig = b.class, mono = b.mono, bufs = {}, units = 0 }
      class_list[#class_list + 1] = classes[b.class]
    end
    table.insert(classes[b.class].bufs, b)
  end
  table.sort(class_list, function(a, b) return a.sig < b.sig end)
  for _, c in ipairs(class_list) do
    local order = {}
    for i, b in ipairs(c.bufs) do order[i] = b end
    table.sort(order, function(a, b)
      if a.units ~= b.units then return a.units > b.units end
      return a.start < b.start
    end)
    local placed = {}
    for _, b in ipairs(order) do
      local conflicts = {}
      for _, p in ipairs(placed) do
        if p.start <= b.stop and b.start <= p.stop then conflicts[#conflicts + 1] = p end
      end
      table.sort(conflicts, function(x, y) return x.offset < y.offset end)
      -- smallest gap that fits; else on top
      local best, best_gap, cursor = nil, math.huge, 0
      for _, p in ipairs(conflicts) do
        local gap = p.offset - cursor
        if gap >= b.units and gap < best_gap then best, best_gap = cursor, gap end
        cursor = math.max(cursor, p.offset + p.units)
      end
      b.offset = best or cursor
      placed[#placed + 1] = b
      c.units = math.max(c.units, b.offset + b.units)
    end
  end
  -- class bases: the regions follow one another
  local base = {}
  for i, c in ipairs(class_list) do
    c.base = base
    local nb = {}
    for _, t in ipairs(base) do nb[#nb + 1] = t end
    nb[#nb + 1] = size.mul(size.mono(c.units), c.mono)
    base = nb
  end
  graph.plan = { bufs = bufs, by_root = by_root, by_work = by_work, classes = class_list, total_terms = base }

  -- report at reference sizes
  local env = reference or {}
  local peak, sum = 0, 0
  for _, t in ipairs(base) do peak = peak + size.eval(t, env) end
  for _, b in ipairs(bufs) do sum = sum + size.eval(size.mul(size.mono(b.units), b.mono), env) end
  graph.plan.peak_elems, graph.plan.sum_elems = peak, sum
  return graph.plan
end

-- C expression of a sum of monomials
function M.terms_c(terms)
  if #terms == 0 then return "0" end
  local p = {}
  for i, t in ipairs(terms) do p[i] = size.c(t) end
  return table.concat(p, " + ")
end

local function buffer_offset_c(graph, b)
  local terms = {}
  for _, c in ipairs(graph.plan.classes) do
    if c.sig == b.class then
      for _, t in ipairs(c.base) do terms[#terms + 1] = t end
      if b.offset > 0 then terms[#terms + 1] = size.mul(size.mono(b.offset), b.mono) end
      break
    end
  end
  return M.terms_c(terms)
end

-- C expression (elements) of the offset of the buffer holding node n
function M.offset_c(graph, n) return buffer_offset_c(graph, graph.plan.by_root[graph.root[n.id].id]) end

-- C expression (elements) of the offset of node n's workspace, or nil when its op needs none
function M.workspace_offset_c(graph, n)
  local b = graph.plan.by_work[n.id]
  return b and buffer_offset_c(graph, b)
end

-- checks that no two buffers that live at the same time overlap, for concrete sizes
function M.verify(graph, env)
  local spans = {}
  for _, b in ipairs(graph.plan.bufs) do
    local off = 0
    for _, c in ipairs(graph.plan.classes) do
      if c.sig == b.class then
        for _, t in ipairs(c.base) do off = off + size.eval(t, env) end
        off = off + size.eval(size.mul(size.mono(b.offset), b.mono), env)
      end
    end
    local len = size.eval(b.workspace or size.numel(b.node.shape), env)
    spans[#spans + 1] = { b = b, lo = off, hi = off + len }
  end
  for i = 1, #spans do
    for j = i + 1, #spans do
      local x, y = spans[i], spans[j]
      if x.b.start <= y.b.stop and y.b.start <= x.b.stop and x.lo < y.hi and y.lo < x.hi then
        return false, string.format("buffers of %%%d and %%%d overlap while both live", x.b.node.id, y.b.node.id)
      end
    end
  end
  return true
end

return M
