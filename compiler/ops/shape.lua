-- Ops that move data without arithmetic: reshape (a view), permute, slice, pad, concat,
-- and detach (a view that stops gradients).
local size = require("compiler.size")
local ir = require("compiler.ir")
local loops = require("compiler.loops")

local M = { ops = {} }

local function fixed_axis(n, x, axis, what)
  if axis < 1 or axis > #x.shape then
    ir.fail(n, "%s: axis %d out of range for shape %s", what, axis, size.shape_str(x.shape))
  end
  if size.is_sym(x.shape[axis]) then
    ir.fail(n, "%s: axis %d of %s is the run-time size %s; only fixed dimensions can be sliced or padded",
      what, axis, size.shape_str(x.shape), x.shape[axis])
  end
end

M.ops.reshape = {
  alias = true,
  infer = function(n)
    local x, shape = n.inputs[1], n.attrs.shape
    if not size.eq(size.numel(x.shape), size.numel(shape)) then
      ir.fail(n, "reshape: %s has %s elements, %s has %s", size.shape_str(x.shape), size.c(size.numel(x.shape)),
        size.shape_str(shape), size.c(size.numel(shape)))
    end
    return shape, x.dtype
  end,
  grad = function(F, n, g) return { F.reshape(g, n.inputs[1].shape) } end,
}

M.ops.detach = {
  alias = true,
  infer = function(n) return n.inputs[1].shape, n.inputs[1].dtype end,
  grad = function() return {} end,
}

M.ops.permute = {
  infer = function(n)
    local x, perm = n.inputs[1], n.attrs.perm
    if #perm ~= #x.shape then
      ir.fail(n, "permute: %d axes given for shape %s", #perm, size.shape_str(x.shape))
    end
    local seen, out = {}, {}
    for d, p in ipairs(perm) do
      if p < 1 or p > #x.shape or seen[p] then
        ir.fail(n, "permute: {%s} is not a permutation of %d axes", table.concat(perm, ","), #x.shape)
      end
      seen[p] = true
      out[d] = x.shape[p]
    end
    return out, x.dtype
  end,
  grad = function(F, n, g)
    local inv = {}
    for d, p in ipairs(n.attrs.perm) do inv[p] = d end
    return { F.permute(g, inv) }
  end,
  emit = function(n, names)
    local x = n.inputs[1]
    local xs = size.strides(x.shape)
    local dims, st = {}, {}
    for d, p in ipairs(n.attrs.perm) do
      dims[d] = size.of_dim(n.shape[d])
      st[d] = xs[p]
    end
    return loops.emit(dims, { { strides = loops.contiguous(n.shape) }, { strides = st } }, function(idx)
      return string.format("%s[%s] = %s[%s];", names.out, idx[1], names.inputs[1], idx[2])
    end)
  end,
}

M.ops.slice = {
  infer = function(n)
    local x, a = n.inputs[1], n.attrs
    fixed_axis(n, x, a.axis, "slice")
    if a.start < 0 or a.len < 1 or a.start + a.len > x.shape[a.axis] then
      ir.fail(n, "slice: [%d, %d) is outside axis %d of %s", a.start, a.start + a.len, a.axis, size.shape_str(x.shape))
    end
    local out = {}
    for d, s in ipairs(x.shape) do out[d] = s end
    out[a.axis] = a.len
    return out, x.dtype
  end,
  grad = function(F, n, g)
    local a = n.attrs
    return { F.pad(g, a.axis, a.start, n.inputs[1].shape[a.axis] - a.start - a.len) }
  end,
  emit = function(n, names)
    local x, a = n.inputs[1], n.attrs
    local xs = size.strides(x.shape)
    local dims = {}
    for d, s in ipairs(n.shape) do dims[d] = size.of_dim(s) end
    local base = size.mul(xs[a.axis], size.mono(a.start))
    return loops.emit(dims, { { strides = loops.contiguous(n.shape) }, { strides = xs, base = base } }, function(idx)
      return string.format("%s[%s] = %s[%s];", names.out, idx[1], names.inputs[1], idx[2])
    end)
  end,
}

-- zero padding along one axis: the adjoint of slice
M.ops.pad = {
  infer = function(n)
    local x, a = n.inputs[1], n.attrs
    fixed_axis(n, x, a.axis, "pad")
    local out = {}
    for d, s in ipairs(x.shape) do out[d] = s end
    out[a.axis] = x.shape[a.axis] + a.before + a.after
    return out, x.dtype
  end,
  grad = function(F, n, g) return { F.slice(g, n.attrs.axis, n.attrs.before, n.inputs[1].shape[n.attrs.axis]) } end,
  emit = function(n, names)
    local x, a = n.inputs[1], n.attrs
    local os = size.strides(n.shape)
    local dims = {}
    for d, s in ipairs(x.shape) do dims[d] = size.of_dim(s) end
    local body = loops.emit(dims, { { strides = os, base = size.mul(os[a.axis], size.mono(a.before)) },
      { strides = loops.contiguous(x.shape) } }, function(idx)
      return string.format("%s[%s] = %s[%s];", names.out, idx[1], names.inputs[1], idx[2])
    end)
    return string.format("    memset(%s, 0, sizeof(real)*(size_t)(%s));\n", names.out, size.c(size.numel(n.shape))) .. body
  end,
}

M.ops.concat = {
  infer = function(n)
    local axis = n.attrs.axis
    local first = n.inputs[1]
    local out = {}
    for d, s in ipairs(first.shape) do out[d] = s end
    fixed_axis(n, first, axis, "concat")
    local total = 0
    for i, x in ipairs(n.inputs) do
      if #x.shape ~= #first.shape then
        ir.fail(n, "concat: argument %d has shape %s, argument 1 has %s", i, size.shape_str(x.shape), size.shape_str(first.shape))
      end
      for d = 1, #x.shape do
        if d ~= axis and x.shape[d] ~= first.shape[d] then
          ir.fail(n, "concat along axis %d: argument %d has shape %s, argument 1 has %s", axis, i,
            size.shape_str(x.shape), size.shape_str(first.shape))
        end
      end
      fixed_axis(n, x, axis, "concat")
      total = total + x.shape[axis]
    end
    out[axis] = total
    return out, first.dtype
  end,
  grad = function(F, n, g)
    local gs, start = {}, 0
    for i, x in ipairs(n.inputs) do
      gs[i] = F.slice(g, n.attrs.axis, start, x.shape[n.attrs.axis])
      start = start + x.shape[n.attrs.axis]
    end
    return gs
  end,
  emit = function(n, names)
    local os = size.strides(n.shape)
    local parts, start = {}, 0
    for i, x in ipairs(n.inputs) do
      local dims = {}
      for d, s in ipairs(x.shape) do dims[d] = size.of_dim(s) end
      parts[#parts + 1] = loops.emit(dims, { { strides = os, base = size.mul(os[n.attrs.axis], size.mono(start)) },
        { strides = loops.contiguous(x.shape) } }, function(idx)
        return string.format("%s[%s] = %s[%s];", names.out, idx[1], names.inputs[i], idx[2])
      end)
      start = start + x.shape[n.attrs.axis]
    end
    return table.concat(parts, "\n")
  end,
}

return M
