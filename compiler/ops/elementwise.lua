-- Element-wise maps with numpy broadcasting: unary and binary math, constants folded in as
-- scalar attributes, and `expand` (a broadcast copy). One op, "map", with a function name.
local size = require("compiler.size")
local loops = require("compiler.loops")
local ir = require("compiler.ir")

local M = {}

-- Scalar attributes: a number, or {k = number, den = monomial} for 1/run-time-size factors (means).
local function scalar_c(v)
  if type(v) == "number" then
    if v == math.huge then return "INFINITY" elseif v == -math.huge then return "(-INFINITY)" end
    return string.format("(real)%.17g", v)
  end
  return string.format("((real)%.17g/(real)(%s))", v.k, size.c(v.den))
end
M.scalar_c = scalar_c

-- fn -> {arity, c = function(args, attrs) -> C expression, grad = function(F, node, g) -> grads (out-shaped)}
-- grad is absent for functions that are not differentiable (steps and comparisons).
local FNS = {
  id     = { arity = 1, c = function(a) return a[1] end,
             grad = function(F, n, g) return { g } end },
  add    = { arity = 2, c = function(a) return a[1] .. " + " .. a[2] end,
             grad = function(F, n, g) return { g, g } end },
  sub    = { arity = 2, c = function(a) return a[1] .. " - " .. a[2] end,
             grad = function(F, n, g) return { g, F.neg(g) } end },
  mul    = { arity = 2, c = function(a) return a[1] .. " * " .. a[2] end,
             grad = function(F, n, g) return { F.mul(g, n.inputs[2]), F.mul(g, n.inputs[1]) } end },
  div    = { arity = 2, c = function(a) return a[1] .. " / " .. a[2] end,
             grad = function(F, n, g)
               local gb = F.div(g, n.inputs[2])
               return { gb, F.neg(F.mul(gb, n)) } -- d(a/b)/db = -(a/b)/b
             end },
  neg    = { arity = 1, c = function(a) return "-" .. a[1] end,
             grad = function(F, n, g) return { F.neg(g) } end },
  exp    = { arity = 1, c = function(a) return "exp_real(" .. a[1] .. ")" end,
             grad = function(F, n, g) return { F.mul(g, n) } end },
  log    = { arity = 1, c = function(a) return "log(" .. a[1] .. ")" end,
             grad = function(F, n, g) return { F.div(g, n.inputs[1]) } end },
  sqrt   = { arity = 1, c = function(a) return "sqrt(" .. a[1] .. ")" end,
             grad = function(F, n, g) return { F.scale(F.div(g, n), 0.5) } end },
  rsqrt  = { arity = 1, c = function(a) return "(real)1 / sqrt(" .. a[1] .. ")" end,
             grad = function(F, n, g) -- d x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
               return { F.mul(g, F.scale(F.mul(n, F.square(n)), -0.5)) }
             end },
  recip  = { arity = 1, c = function(a) return "(real)1 / " .. a[1] end,
             grad = function(F, n, g) return { F.neg(F.mul(g, F.square(n))) } end },
  square = { arity = 1, c = function(a) return a[1] .. " * " .. a[1] end,
             grad = function(F, n, g) return { F.mul(g, F.scale(n.inputs[1], 2)) } end },
  abs    = { arity = 1, c = function(a) return "fabs(" .. a[1] .. ")" end,
             grad = function(F, n, g) return { F.mul(g, F.sign(n.inputs[1])) } end },
  -- the mask reads the output (relu(x) > 0 exactly when x > 0): the input need not be kept for
  -- the backward pass, so a GroupNorm before a ReLU can write the ReLU's output directly
  relu   = { arity = 1, c = function(a) return a[1] .. " > 0 ? " .. a[1] .. " : (real)0" end,
             grad = function(F, n, g) return { F.mul(g, F.step(n, 0)) } end },
  sigmoid = { arity = 1, c = function(a) return "(real)1 / ((real)1 + exp_real(-" .. a[1] .. "))" end,
             grad = function(F, n, g) return { F.mul(g, F.mul(n, F.addc(F.neg(n), 1))) } end },
  tanh   = { arity = 1, c = function(a) return "tanh(" .. a[1] .. ")" end,
             grad = function(F, n, g) return { F.mul(g, F.addc(F.neg(F.square(n)), 1)) } end },
  gelu   = { arity = 1, c = function(a) return "gelu_tanh(" .. a[1] .. ")" end,
             grad = function(F, n, g) return { F.mul(g, F.map("gelu_grad", { n.inputs[1] })) } end },
  gelu_grad = { arity = 1, c = function(a) return "gelu_tanh_grad(" .. a[1] .. ")" end },
  scale  = { arity = 1, c = function(a, at) return a[1] .. " * " .. scalar_c(at.c) end,
             grad = function(F, n, g) return { F.scale(g, n.attrs.c) } end },
  addc   = { arity = 1, c = function(a, at) return a[1] .. " + " .. scalar_c(at.c) end,
             grad = function(F, n, g) return { g } end },
  clampmin = { arity = 1, c = function(a, at)
                 return a[1] .. " > " .. scalar_c(at.c) .. " ? " .. a[1] .. " : " .. scalar_c(at.c) end,
             grad = function(F, n, g) return { F.mul(g, F.step(n.inputs[1], n.attrs.c)) } end },
  -- not differentiable: masks and subgradient selectors
  step   = { arity = 1, c = function(a, at) return a[1] .. " > " .. scalar_c(at.c) .. " ? (real)1 : (real)0" end },
  sign   = { arity = 1, c = function(a) return "(real)((" .. a[1] .. " > 0) - (" .. a[1] .. " < 0))" end },
  eq     = { arity = 2, c = function(a) return a[1] .. " == " .. a[2] .. " ? (real)1 : (real)0" end },
}
M.FNS = FNS

-- numpy broadcasting of shapes; error names the op, both shapes and the graph line
function M.broadcast(shapes, what, src)
  local rank = 0
  for _, s in ipairs(shapes) do rank = math.max(rank, #s) end
  local out = {}
  for d = 1, rank do
    local dim = 1
    for _, s in ipairs(shapes) do
      local sd = s[d - (rank - #s)]
      if sd ~= nil and sd ~= 1 then
        if dim ~= 1 and dim ~= sd then
          local strs = {}
          for i, sh in ipairs(shapes) do strs[i] = size.shape_str(sh) end
          ir.fail(src, "%s: shapes %s cannot be broadcast together (dimension %d: %s vs %s)",
            what, table.concat(strs, " and "), d, tostring(dim), tostring(sd))
        end
        dim = sd
      end
    end
    out[d] = dim
  end
  return out
end

M.ops = {}

M.ops.map = {
  infer = function(n)
    local fn = FNS[n.attrs.fn] or ir.fail(n, "unknown element-wise function '%s'", tostring(n.attrs.fn))
    if #n.inputs ~= fn.arity then
      ir.fail(n, "%s takes %d argument(s), got %d", n.attrs.fn, fn.arity, #n.inputs)
    end
    local shapes = {}
    for i, x in ipairs(n.inputs) do
      if x.dtype ~= "real" then ir.fail(n, "%s: argument %d is %s, expected real", n.attrs.fn, i, x.dtype) end
      shapes[i] = x.shape
    end
    if n.attrs.out_shape then shapes[#shapes + 1] = n.attrs.out_shape end
    local out = M.broadcast(shapes, n.attrs.fn, n)
    if n.attrs.out_shape and not size.same_shape(out, n.attrs.out_shape) then
      ir.fail(n, "expand: %s cannot be expanded to %s", size.shape_str(n.inputs[1].shape), size.shape_str(n.attrs.out_shape))
    end
    return out, "real"
  end,
  grad = function(F, n, g)
    local fn = FNS[n.attrs.fn]
    if not fn.grad then return {} end
    local gs = fn.grad(F, n, g)
    for i, x in ipairs(n.inputs) do
      if gs[i] then gs[i] = F.sum_to(gs[i], x.shape) end
    end
    return gs
  end,
  emit = function(n, names)
    local fn = FNS[n.attrs.fn]
    local dims = {}
    for d, s in ipairs(n.shape) do dims[d] = size.of_dim(s) end
    local operands = { { strides = loops.contiguous(n.shape) } }
    for i, x in ipairs(n.inputs) do operands[i + 1] = { strides = loops.broadcast_strides(x.shape, n.shape) } end
    return loops.emit(dims, operands, function(idx)
      local args = {}
      for i = 1, #n.inputs do args[i] = names.inputs[i] .. "[" .. idx[i + 1] .. "]" end
      return string.format("%s[%s] = %s;", names.out, idx[1], fn.c(args, n.attrs))
    end)
  end,
  flops = function(n) return size.numel(n.shape) end,
}

return M
