-- Fusion: element-wise chains into one loop, reductions with their element-wise prologue, and
-- reductions inlined into the element-wise expression that consumes them (an epilogue: the mean
-- and rsqrt of a norm, the scale of a sum). A fused kernel reads its leaves once and writes one
-- result; the intermediate tensors are never stored.
--
-- A node is inlined into its consumer when the consumer is its only user, both belong to the same
-- pass (forward or backward), it is not an output or gradient, and it has the consumer's
-- iteration shape: the consumer's own shape for maps, the reduced tensor's shape for a prologue.
-- A cheap map (add, mul, scale, ...) that several consumers read is recomputed in each of them
-- instead of stored, when every consumer is itself a fused kernel of its shape in the same pass and
-- the map reads no single-use map of its size (which would then have to be stored for it): storing
-- it costs a write and a read per consumer, recomputing costs only the reads of its inputs
-- (GroupNorm's x - mean, read by the variance and by the normalisation).
-- Reductions inside a reduction's prologue are not inlined (that would recompute them per element),
-- and only reductions along the last axis are fused (the others keep a blocked kernel that reads
-- rows contiguously, which matters more than saving the prologue's pass).
local size = require("compiler.size")
local ops = require("compiler.ops")
local simplify = require("compiler.passes.simplify")

local M = {}

-- element-wise functions cheap enough to recompute rather than store
local CHEAP = { id = true, add = true, sub = true, mul = true, neg = true, scale = true, addc = true, square = true,
  relu = true, step = true }

function M.run(graph)
  local uses, is_root = simplify.uses(graph)

  local inlined = {}
  local fused_count = 0

  -- the maps that may be recomputed in each of their consumers
  local readers = simplify.readers(graph)
  local recomputable = {}
  for _, x in ipairs(graph.schedule) do
    if x.op == "map" and CHEAP[x.attrs.fn] and (uses[x.id] or 0) > 1 and not is_root[x.id] then
      local ok = true
      for _, r in ipairs(readers[x.id]) do
        local fusible = r.phase == x.phase and ((r.op == "map" and size.same_shape(r.shape, x.shape))
          or (r.op == "reduce" and r.attrs.axis == #r.shape))
        if not fusible then ok = false break end
      end
      for _, a in ipairs(x.inputs) do
        if a.op == "map" and (uses[a.id] or 0) == 1 and not recomputable[a.id] and size.same_shape(a.shape, x.shape) then ok = false end
      end
      recomputable[x.id] = ok or nil
    end
  end
  local recomputed = {} -- id -> times inlined
  local pinned = {}     -- read by a recomputed map as a leaf: must be stored

  local function inlinable(x, consumer, shape)
    return not inlined[x.id] and not pinned[x.id] and uses[x.id] == 1 and not is_root[x.id] and x.phase == consumer.phase
      and size.same_shape(x.shape, shape)
  end

  -- expression tree of node n: {leaf = node} | {fn, attrs, args} | {reduce = kind, axis, len, arg}
  local covered
  local function build(n, consumer, shape, in_reduce)
    if recomputable[n.id] and n.phase == consumer.phase and size.same_shape(n.shape, shape) then
      recomputed[n.id] = (recomputed[n.id] or 0) + 1
      covered[#covered + 1] = n
      local args = {}
      for k, x in ipairs(n.inputs) do
        if recomputable[x.id] then args[k] = build(x, n, n.shape, in_reduce)
        else pinned[x.id] = true; args[k] = { leaf = x } end
      end
      return { fn = n.attrs.fn, attrs = n.attrs, args = args }
    end
    if n.op == "map" and inlinable(n, consumer, shape) then
      inlined[n.id] = true
      covered[#covered + 1] = n
      local args = {}
      for k, x in ipairs(n.inputs) do args[k] = build(x, n, n.shape, in_reduce) end
      return { fn = n.attrs.fn, attrs = n.attrs, args = args }
    end
    if n.op == "reduce" and not in_reduce and inlinable(n, consumer, shape) and n.attrs.axis == #n.shape then
      inlined[n.id] = true
      covered[#covered + 1] = n
      local x = n.inputs[1]
      return { reduce = n.attrs.kind, axis = n.attrs.axis, len = x.shape[n.attrs.axis], arg = build(x, n, x.shape, true) }
    end
    return { leaf = n }
  end

  for i = #graph.schedule, 1, -1 do
    local n = graph.schedule[i]
    -- a reduction across rows (axis not last) keeps its own blocked, contiguous kernel
    local across_rows = n.op == "reduce" and n.attrs.axis ~= #n.shape
    -- a recomputable map that every consumer recomputed is not stored at all
    if recomputable[n.id] and (recomputed[n.id] or 0) >= uses[n.id] then inlined[n.id] = true end
    if not inlined[n.id] and (n.op == "map" or (n.op == "reduce" and not across_rows)) then
      covered = {}
      local tree
      if n.op == "map" then
        local args = {}
        for k, x in ipairs(n.inputs) do args[k] = build(x, n, n.shape, false) end
        tree = { fn = n.attrs.fn, attrs = n.attrs, args = args }
      else
        local x = n.inputs[1]
        tree = { reduce = n.attrs.kind, axis = n.attrs.axis, len = x.shape[n.attrs.axis], arg = build(x, n, x.shape, true) }
      end
      if #covered > 0 then
        -- the node becomes the fused kernel: same identity, so its users need no rewiring
        local leaves, index = {}, {}
        local function collect(t)
          if t.leaf then
            if not index[t.leaf.id] then leaves[#leaves + 1] = t.leaf; index[t.leaf.id] = #leaves end
            t.k = index[t.leaf.id]
          elseif t.reduce then collect(t.arg)
          else for _, a in ipairs(t.args) do collect(a) end end
        end
        collect(tree)
        local flops = ops[n.op].flops(n)
        local names = { n.op == "map" and n.attrs.fn or n.attrs.kind }
        for _, c in ipairs(covered) do
          flops = size.mul(flops, size.mono(1)) -- copy
          local f = ops[c.op].flops(c)
          if size.signature(f) == size.signature(flops) then flops = size.mono(flops.c + f.c, flops.s) end
          names[#names + 1] = c.op == "map" and c.attrs.fn or c.attrs.kind
        end
        n.fused_from = { op = n.op, attrs = n.attrs, covered = covered }
        n.op = "fused"
        n.inputs = leaves
        n.attrs = { expr = tree, flops = flops, name = table.concat(names, "_", 1, math.min(#names, 4)) }
        fused_count = fused_count + 1
      end
    end
  end
  simplify.drop(graph, inlined)
  graph.stats_fused = fused_count
  return fused_count
end

return M
