-- Reassociation of linear chains that end in a dot product.
--
-- sum_j (X W)_j q_j = sum_i X_i (W q)_i: when a product X.W by a shared matrix is only contracted
-- with a (broadcast, hence small) vector q along its last axis, contracting X with W.q instead
-- turns an O(N d^2) GEMM into an O(N d) dot product plus one small GEMM on q. The same holds
-- through sums (distribute the contraction over X + Y), and through a batched left product
-- A.P when q is constant along A's rows: sum_j (A P)_kj q_j = sum_k' A_kk' (P q)_k'.
-- These are matrix-chain reorderings (choose the cheap association), applied to the forward
-- graph before differentiation, so the backward pass is built from the cheap form too.
-- In RECLF, SRM's and IRM's outputs are consumed only through such contractions (s_k = sum m'_k,
-- e_k = q.(m'_k Wb)), so their per-pair d x d products become per-report vectors.
local size = require("compiler.size")

local M = {}

local REF = { B = 32, T = 32 } -- reference sizes to compare costs
local function numel(n)
  local env = {}
  for k in pairs(size.numel(n.shape).s) do env[k] = REF[k] or 32 end
  return size.eval(size.numel(n.shape), env)
end

local function is_map(n, fn) return n.op == "map" and n.attrs.fn == fn end

-- X = X0 . W (or X0 . W^T) with a shared 2-D W, as F.matmul builds it (folded batch or plain 2-D)
local function shared_linear(X)
  local mm, X0 = X, nil
  if X.op == "reshape" and X.inputs[1].op == "matmul" then mm = X.inputs[1] end
  if mm.op ~= "matmul" or mm.attrs.ta or #mm.inputs[2].shape ~= 2 or #mm.inputs[1].shape ~= 2 then return nil end
  local a = mm.inputs[1]
  X0 = (mm ~= X and a.op == "reshape") and a.inputs[1] or a
  if mm == X then X0 = a end
  -- X0 must be X with its last dimension replaced by W's input dimension
  if #X0.shape ~= #X.shape then return nil end
  for d = 1, #X.shape - 1 do if X0.shape[d] ~= X.shape[d] then return nil end end
  return X0, mm.inputs[2], mm.attrs.tb
end

-- F.sum over the last axis of X * Q (Q broadcast against X; Q == nil means all ones), rewritten
-- where a rule applies. Returns the node and whether anything was rewritten.
local function sumdot(F, X, Q)
  local last = #X.shape
  -- distribute over a sum of full-shaped terms
  if (is_map(X, "add") or is_map(X, "sub")) and size.same_shape(X.inputs[1].shape, X.shape)
      and size.same_shape(X.inputs[2].shape, X.shape) then
    local a, ca = sumdot(F, X.inputs[1], Q)
    local b, cb = sumdot(F, X.inputs[2], Q)
    -- distributing alone gains nothing: only when a term below is rewritten
    if ca or cb then return X.attrs.fn == "add" and F.add(a, b) or F.sub(a, b), true end
  end
  -- through a shared matrix: contract X0 with W.q instead
  local X0, W, tb = shared_linear(X)
  if X0 and (Q == nil or numel(Q) * 2 <= numel(X)) then
    local din = X0.shape[#X0.shape]
    local q2
    if Q == nil then -- W.1: the row sums of W (x.W) or column sums (x.W^T)
      q2 = F.reshape(F.sum(W, tb and 1 or 2), { din })
    elseif #Q.shape == 1 then
      q2 = F.reshape(F.matmul(F.reshape(Q, { 1, Q.shape[1] }), W, { tb = not tb }), { din })
    else
      q2 = F.matmul(Q, W, { tb = not tb })
    end
    return (sumdot(F, X0, q2)), true
  end
  -- through a batched left product whose rows q does not vary along
  if X.op == "matmul" and #X.shape >= 3 and not X.attrs.ta and not X.attrs.tb
      and (Q == nil or #Q.shape < 2 or Q.shape[#Q.shape - 1] == 1) then
    local inner = sumdot(F, X.inputs[2], Q)
    local out = F.matmul(X.inputs[1], inner)
    if size.same_shape(out.shape, (function() local s = {} for d, v in ipairs(X.shape) do s[d] = v end s[last] = 1 return s end)()) then
      return out, true
    end
  end
  return F.sum(Q and F.mul(X, Q) or X, last), false
end

local function replace_uses(graph, old, new)
  for _, n in ipairs(graph.nodes) do
    for k, x in ipairs(n.inputs) do if x == old then n.inputs[k] = new end end
  end
  for _, o in ipairs(graph.outputs) do if o.node == old then o.node = new end end
end

-- creation order after rewriting is no longer a schedule: order nodes so inputs come first,
-- keeping the original order otherwise
local function toposort(graph)
  local seen, order = {}, {}
  local function visit(n)
    if seen[n] then return end
    seen[n] = true
    for _, x in ipairs(n.inputs) do visit(x) end
    order[#order + 1] = n
  end
  for _, n in ipairs(graph.nodes) do visit(n) end
  graph.nodes = order
end

function M.run(graph)
  local F = graph.F
  local rewrites = 0
  local original = {}
  for i, n in ipairs(graph.nodes) do original[i] = n end
  for _, n in ipairs(original) do
    if n.op == "reduce" and n.attrs.kind == "sum" and n.attrs.axis == #n.shape and #n.shape >= 2 then
      local x = n.inputs[1]
      local X, Q = x, nil
      if is_map(x, "mul") then
        local a, b = x.inputs[1], x.inputs[2]
        if size.same_shape(a.shape, x.shape) and numel(b) < numel(a) then X, Q = a, b
        elseif size.same_shape(b.shape, x.shape) and numel(a) < numel(b) then X, Q = b, a end
      end
      graph.src_override = n.src
      local new, changed = sumdot(F, X, Q)
      graph.src_override = nil
      if changed then
        replace_uses(graph, n, new)
        rewrites = rewrites + 1
      end
    end
  end
  if rewrites > 0 then toposort(graph) end
  graph.stats_reassociated = rewrites
  return rewrites
end

return M
