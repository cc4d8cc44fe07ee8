-- GEMM epilogues: an element-wise kernel that reads a matrix product (a bias, an activation, a
-- residual, a scale) is folded into the product's kernel. The kernel runs the GEMM and then the
-- element-wise expression in place on each block of the product it just wrote: one batch entry of
-- a batched product, or one panel of rows of a large one, while that block is still in cache.
-- The product's own buffer disappears.
--
-- Runs after the fusion pass (passes/fuse.lua), on its fused kernels and on lone maps. A product
-- is folded into its consumer when
--   - the consumer is its only user, it is not an output or gradient, and both are in the same
--     pass (forward or backward);
--   - the consumer has the product's shape (each output element reads the product only at its
--     own index, which is what makes writing in place safe);
--   - the consumer's expression has no reduction (a reduction reads other elements of the row).
-- A product whose value the backward pass needs as well (the input of GELU, say) has two users and
-- stays a kernel of its own. The consumer may read the product through reshapes (the
-- reassociation pass flattens [B, L, d] x [d, e] into one [B*L, d] x [d, e] product) when the last
-- dimension is kept and every other leaf is either broadcast over all the leading dimensions (a
-- bias) or has the consumer's whole shape (a residual).
--
-- Likewise a lone ReLU of a GroupNorm that only it reads (same conditions) becomes the GroupNorm
-- kernel's last step (attrs.relu): one pass over the activations instead of two. Its gradient's
-- mask, dy * step(y), then joins the GroupNorm's backward kernels (attrs.relu): they recompute
-- it, and the masked gradient is never written.
local size = require("compiler.size")
local ops = require("compiler.ops")
local simplify = require("compiler.passes.simplify")
local loops = require("compiler.loops")

local M = {}

local function has_reduce(t)
  if t.leaf then return false end
  if t.reduce then return true end
  for _, a in ipairs(t.args) do if has_reduce(a) then return true end end
  return false
end

-- the consumer's expression tree over its inputs (a lone map is a one-node tree)
local function tree_of(n)
  if n.op == "fused" then return n.attrs.expr end
  local args = {}
  for k, x in ipairs(n.inputs) do args[k] = { leaf = x, k = k } end
  return { fn = n.attrs.fn, attrs = n.attrs, args = args }
end

-- a ReLU's gradient: a fused dy * step(y) (either order, threshold 0); returns dy and y
local function relu_mask_of(n)
  if n.op ~= "fused" then return nil end
  local t = n.attrs.expr
  if t.fn ~= "mul" or #t.args ~= 2 then return nil end
  for k = 1, 2 do
    local a, m = t.args[k], t.args[3 - k]
    if a.leaf and m.fn == "step" and (m.attrs.c or 0) == 0 and m.args[1].leaf then
      return n.inputs[a.k], n.inputs[m.args[1].k]
    end
  end
  return nil
end

function M.run(graph)
  local users, is_root = simplify.uses(graph)

  local function private(x, n) return users[x.id] == 1 and not is_root[x.id] and x.phase == n.phase end
  -- the product that leaf x of consumer n is, directly or through reshapes only n reads, and the
  -- views of n's other leaves against it (nil: not foldable)
  local function product_of(x, n)
    if not private(x, n) then return nil end
    local mm, through = x, false
    while mm.op == "reshape" do
      mm = mm.inputs[1]
      through = true
      if not private(mm, n) then return nil end
    end
    if mm.op ~= "matmul" or mm.attrs.epilogue or mm.attrs.sum_axis then return nil end
    if not through then return size.same_shape(mm.shape, n.shape) and mm or nil, {} end
    local last = n.shape[#n.shape]
    if #mm.shape ~= 2 or mm.shape[2] ~= last or not size.same_shape(x.shape, n.shape) then return nil end
    local views = {}
    for k, y in ipairs(n.inputs) do
      if y ~= x then
        local st = loops.broadcast_strides(y.shape, n.shape)
        local lead_bcast, lead_full = true, true
        for d = 1, #n.shape - 1 do
          if st[d] then lead_bcast = false else lead_full = false end
        end
        if lead_bcast then views[k] = { y.shape[#y.shape] or 1 }
        elseif lead_full and size.eq(size.numel(y.shape), size.numel(n.shape)) then views[k] = mm.shape
        else return nil end
      end
    end
    return mm, views
  end

  local folded, count = {}, 0
  for _, n in ipairs(graph.schedule) do
    local tree = (n.op == "fused" or n.op == "map") and tree_of(n)
    if tree and not has_reduce(tree) then
      local self, mm, views
      for k, x in ipairs(n.inputs) do
        mm, views = product_of(x, n)
        if mm then self = k break end
      end
      if self then
        -- inputs: the product's two operands, then the consumer's other leaves
        local inputs, slot = { mm.inputs[1], mm.inputs[2] }, {}
        for k, x in ipairs(n.inputs) do
          if k ~= self then inputs[#inputs + 1] = x; slot[k] = #inputs end
        end
        local name = n.op == "fused" and n.attrs.name or n.attrs.fn
        local flops = ops[n.op].flops(n)
        n.epilogue_of = { op = n.op, attrs = n.attrs, product = mm, inputs_before = n.inputs }
        n.op = "matmul"
        n.inputs = inputs
        n.attrs = { ta = mm.attrs.ta, tb = mm.attrs.tb, product_shape = mm.shape,
                    epilogue = { expr = tree, self = self, slot = slot, name = name, flops = flops, views = views } }
        local x = n.epilogue_of.inputs_before[self]
        while x ~= mm do folded[x.id] = true; x = x.inputs[1] end -- the reshapes in between
        folded[mm.id] = true
        count = count + 1
      end
    end
  end
  -- a ReLU into the GroupNorm before it
  for _, n in ipairs(graph.schedule) do
    local x = n.inputs[1]
    if n.op == "map" and n.attrs.fn == "relu" and x.op == "group_norm" and not x.attrs.relu and private(x, n) then
      n.op, n.inputs, n.attrs = "group_norm", x.inputs, { groups = x.attrs.groups, relu = true }
      folded[x.id] = true
      count = count + 1
    end
  end
  -- that ReLU's gradient, dz = dy * step(relu output), into the two GroupNorm backward kernels
  -- that are its only readers (the per-channel sums and the input gradient): they read dy and
  -- recompute the mask from x, the statistics, gamma and beta, as the forward kernel computed
  -- the ReLU's input, bit for bit
  local readers = simplify.readers(graph)
  for _, n in ipairs(graph.schedule) do
    local dy, gn = relu_mask_of(n)
    local r = readers[n.id] or {}
    if dy and gn.op == "group_norm" and gn.attrs.relu and not is_root[n.id] and #r == 2 then
      local sums, grad_x
      for _, c in ipairs(r) do
        local same = c.inputs[1] == n and c.inputs[2] == gn.inputs[1] and c.inputs[3] == gn.inputs[2] and not c.attrs.relu
        if same and c.op == "group_norm_sums" then sums = c end
        if same and c.op == "group_norm_grad_x" and c.inputs[4] == gn.inputs[3] then grad_x = c end
      end
      if sums and grad_x and grad_x.inputs[5] == sums then
        local gamma, beta = gn.inputs[3], gn.inputs[4]
        sums.inputs = { dy, sums.inputs[2], sums.inputs[3], gamma, beta }
        grad_x.inputs = { dy, grad_x.inputs[2], grad_x.inputs[3], gamma, sums, beta }
        sums.attrs = { groups = sums.attrs.groups, relu = true }
        grad_x.attrs = { groups = grad_x.attrs.groups, relu = true }
        folded[n.id] = true
        count = count + 1
      end
    end
  end
  simplify.drop(graph, folded)
  graph.stats_epilogues = count
  return count
end

return M
