-- The functional builder: one constructor per primitive op, with numpy-style conveniences
-- (broadcasting, Lua numbers as constants, negative axes). Gradient rules are written with
-- these same functions, so the backward pass is an ordinary graph.
local size = require("compiler.size")
local ir = require("compiler.ir")
local ops = require("compiler.ops")

local M = {}

local Value = {} -- metatable of nodes: Lua operators and methods on graph values
M.Value = Value

local function is_node(x) return type(x) == "table" and getmetatable(x) == Value end
M.is_node = is_node

function M.new(graph)
  local F = {}
  graph.F = F

  local function check_node(x, what, i)
    if not is_node(x) then
      ir.fail(nil, "%s: argument %d must be a tensor, got %s", what, i, type(x) == "table" and "a table" or tostring(x))
    end
    if x.graph ~= graph then ir.fail(nil, "%s: argument %d belongs to another graph", what, i) end
  end

  function F.make(op, inputs, attrs)
    local def = ops[op]
    if not def then ir.fail(nil, "unknown op '%s'", tostring(op)) end
    for i, x in ipairs(inputs) do check_node(x, op, i) end
    local n = graph:node(op, inputs, nil, attrs)
    local shape, dtype = def.infer(n)
    n.shape, n.dtype = shape, dtype or "real"
    return setmetatable(n, Value)
  end

  local function axis_of(x, axis)
    if axis == nil then ir.fail(nil, "an axis is required") end
    if axis < 0 then axis = #x.shape + 1 + axis end
    if axis < 1 or axis > #x.shape then
      ir.fail(nil, "axis %d out of range for shape %s", axis, size.shape_str(x.shape))
    end
    return axis
  end
  F.axis_of = axis_of

  -- element-wise -----------------------------------------------------------------------------
  function F.map(fn, inputs, attrs)
    attrs = attrs or {}
    attrs.fn = fn
    return F.make("map", inputs, attrs)
  end
  local function unary(fn) return function(x) return F.map(fn, { x }) end end
  for _, fn in ipairs({ "neg", "exp", "log", "sqrt", "rsqrt", "recip", "square", "abs", "relu",
    "sigmoid", "tanh", "gelu", "sign" }) do F[fn] = unary(fn) end
  function F.scale(x, c) return F.map("scale", { x }, { c = c }) end
  function F.addc(x, c) return F.map("addc", { x }, { c = c }) end
  function F.clamp_min(x, c) return F.map("clampmin", { x }, { c = c }) end
  function F.step(x, c) return F.map("step", { x }, { c = c or 0 }) end
  function F.eq(a, b) return F.map("eq", { a, b }) end

  function F.add(a, b)
    if type(a) == "number" then a, b = b, a end
    if type(b) == "number" then return b == 0 and a or F.addc(a, b) end
    return F.map("add", { a, b })
  end
  function F.sub(a, b)
    if type(b) == "number" then return b == 0 and a or F.addc(a, -b) end
    if type(a) == "number" then return F.addc(F.neg(b), a) end
    return F.map("sub", { a, b })
  end
  function F.mul(a, b)
    if type(a) == "number" then a, b = b, a end
    if type(b) == "number" then return b == 1 and a or F.scale(a, b) end
    return F.map("mul", { a, b })
  end
  function F.div(a, b)
    if type(b) == "number" then return F.scale(a, 1 / b) end
    if type(a) == "number" then return F.scale(F.recip(b), a) end
    return F.map("div", { a, b })
  end

  function F.expand(x, shape)
    if size.same_shape(x.shape, shape) then return x end
    return F.map("id", { x }, { out_shape = shape })
  end

  -- reductions (keepdim unless asked otherwise) ----------------------------------------------
  local function reduce(kind, x, axis, keepdim)
    axis = axis_of(x, axis)
    local r = F.make("reduce", { x }, { kind = kind, axis = axis })
    if keepdim == false then
      local s = {}
      for d, v in ipairs(x.shape) do if d ~= axis then s[#s + 1] = v end end
      r = F.reshape(r, s)
    end
    return r
  end
  function F.sum(x, axis, keepdim) return reduce("sum", x, axis, keepdim) end
  function F.max(x, axis, keepdim) return reduce("max", x, axis, keepdim) end
  function F.mean(x, axis, keepdim)
    axis = axis_of(x, axis)
    local d = x.shape[axis]
    local s = reduce("sum", x, axis, keepdim)
    if size.is_sym(d) then return F.scale(s, { k = 1, den = size.of_dim(d) }) end
    return F.scale(s, 1 / d)
  end
  -- sum over every axis, to shape {}
  function F.sum_all(x)
    local s = x
    for d = #x.shape, 1, -1 do s = F.sum(s, d) end
    return F.reshape(s, {})
  end

  -- sums a broadcast result back to `shape` (the adjoint of broadcasting)
  function F.sum_to(x, shape)
    if size.same_shape(x.shape, shape) then return x end
    local lead = #x.shape - #shape
    local y = x
    for d = 1, lead do y = F.sum(y, 1, false) end
    for d = 1, #shape do
      if shape[d] == 1 and y.shape[d] ~= 1 then y = F.sum(y, d) end
    end
    if not size.same_shape(y.shape, shape) then
      ir.fail(nil, "internal: cannot sum %s to %s", size.shape_str(x.shape), size.shape_str(shape))
    end
    return y
  end

  -- data movement ----------------------------------------------------------------------------
  function F.reshape(x, shape)
    if size.same_shape(x.shape, shape) then return x end
    return F.make("reshape", { x }, { shape = shape })
  end
  function F.detach(x) return F.make("detach", { x }, {}) end
  function F.permute(x, perm)
    local ident = true
    for d, p in ipairs(perm) do if d ~= p then ident = false end end
    if ident and #perm == #x.shape then return x end
    return F.make("permute", { x }, { perm = perm })
  end
  function F.transpose(x, a, b)
    a, b = axis_of(x, a or -2), axis_of(x, b or -1)
    local perm = {}
    for d = 1, #x.shape do perm[d] = d end
    perm[a], perm[b] = perm[b], perm[a]
    return F.permute(x, perm)
  end
  function F.slice(x, axis, start, len)
    axis = axis_of(x, axis)
    if start == 0 and len == x.shape[axis] then return x end
    return F.make("slice", { x }, { axis = axis, start = start, len = len })
  end
  function F.pad(x, axis, before, after)
    if before == 0 and after == 0 then return x end
    return F.make("pad", { x }, { axis = axis_of(x, axis), before = before, after = after })
  end
  function F.concat(xs, axis)
    if type(xs) ~= "table" or #xs == 0 then ir.fail(nil, "concat: expected a list of tensors") end
    if #xs == 1 then return xs[1] end
    return F.make("concat", xs, { axis = axis_of(xs[1], axis) })
  end

  -- matrix products --------------------------------------------------------------------------
  function F.matmul(a, b, opt)
    opt = opt or {}
    check_node(a, "matmul", 1)
    check_node(b, "matmul", 2)
    -- a shared 2-D right operand: fold a's batch into its rows, one large GEMM
    if #b.shape == 2 and #a.shape > 2 and not opt.ta then
      local k = a.shape[#a.shape]
      local kb = opt.tb and b.shape[2] or b.shape[1]
      if k ~= kb then
        ir.fail(nil, "matmul: inner dimensions differ: %s x %s%s (%s vs %s)", size.shape_str(a.shape),
          size.shape_str(b.shape), opt.tb and "^T" or "", tostring(k), tostring(kb))
      end
      local a2 = F.reshape(a, { size.dim_of(size.prod(a.shape, 1, #a.shape - 1)), k })
      local c2 = F.make("matmul", { a2, b }, { ta = false, tb = opt.tb or false })
      local out = {}
      for d = 1, #a.shape - 1 do out[d] = a.shape[d] end
      out[#out + 1] = c2.shape[2]
      return F.reshape(c2, out)
    end
    return F.make("matmul", { a, b }, { ta = opt.ta or false, tb = opt.tb or false })
  end

  -- indices ------------------------------------------------------------------------------------
  function F.gather(tab, idx) return F.make("gather", { tab, idx }, {}) end
  function F.scatter_add(src, idx, rows) return F.make("scatter_add", { src, idx }, { rows = rows }) end
  function F.onehot(idx, classes) return F.make("onehot", { idx }, { classes = classes }) end
  function F.eye(rows, cols) return F.make("eye", {}, { rows = rows, cols = cols or rows }) end
  function F.fill(shape, value) return F.make("fill", {}, { shape = shape, value = value }) end

  -- convolution ---------------------------------------------------------------------------------
  -- x [N, C, H, W], w [O, C, kh, kw], optional b [O] -> [N, O, Ho, Wo]
  function F.conv2d(x, w, b, a)
    return F.make("conv2d", { x, w, b }, { kh = a.kh, kw = a.kw, stride = a.stride, pad = a.pad })
  end
  function F.conv2d_input_grad(dy, w, a, x_shape)
    return F.make("conv2d_input_grad", { dy, w }, { kh = a.kh, kw = a.kw, stride = a.stride, pad = a.pad, x_shape = x_shape })
  end
  function F.conv2d_weight_grad(dy, x, a, w_shape)
    return F.make("conv2d_weight_grad", { dy, x }, { kh = a.kh, kw = a.kw, stride = a.stride, pad = a.pad, w_shape = w_shape })
  end
  -- convolution primitives ---------------------------------------------------------------------
  function F.im2col(x, a)
    return F.make("im2col", { x }, { kh = a.kh, kw = a.kw, stride = a.stride, pad = a.pad })
  end
  function F.col2im(col, x_shape, a)
    return F.make("col2im", { col }, { kh = a.kh, kw = a.kw, stride = a.stride, pad = a.pad, x_shape = x_shape })
  end

  return F
end

-- Lua operators on graph values (element-wise, numpy broadcasting; use :matmul for products)
local function F_of(a, b)
  local n = is_node(a) and a or b
  return n.graph.F
end
Value.__add = function(a, b) return F_of(a, b).add(a, b) end
Value.__sub = function(a, b) return F_of(a, b).sub(a, b) end
Value.__mul = function(a, b) return F_of(a, b).mul(a, b) end
Value.__div = function(a, b) return F_of(a, b).div(a, b) end
Value.__unm = function(a) return a.graph.F.neg(a) end
Value.__tostring = function(n) return ir.describe(n) end
local methods = {}
for _, m in ipairs({ "matmul", "sum", "mean", "max", "reshape", "permute", "transpose", "slice", "exp", "log",
  "sqrt", "relu", "gelu", "sigmoid", "tanh", "square", "detach", "expand" }) do
  methods[m] = function(self, ...) return self.graph.F[m](self, ...) end
end
Value.__index = methods

return M
