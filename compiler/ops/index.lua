-- Integer-indexed ops: embedding lookup (gather) and its adjoint (scatter_add), one-hot
-- rows from integer targets, identity-like masks (eye) and constant fills.
local size = require("compiler.size")
local ir = require("compiler.ir")

local M = { ops = {} }

local function expect_int(n, x, what)
  if x.dtype ~= "int32" then ir.fail(n, "%s: indices must be int32, got %s %s", what, x.dtype, size.shape_str(x.shape)) end
end

-- out[..., :] = table[idx[...], :]
M.ops.gather = {
  infer = function(n)
    local tab, idx = n.inputs[1], n.inputs[2]
    expect_int(n, idx, "gather")
    if #tab.shape ~= 2 then ir.fail(n, "gather: the table must be [rows, width], got %s", size.shape_str(tab.shape)) end
    local out = {}
    for d, s in ipairs(idx.shape) do out[d] = s end
    out[#out + 1] = tab.shape[2]
    return out, "real"
  end,
  grad = function(F, n, g) return { F.scatter_add(g, n.inputs[2], n.inputs[1].shape[1]), nil } end,
  emit = function(n, names)
    local tab, idx = n.inputs[1], n.inputs[2]
    local W = size.c(size.of_dim(tab.shape[2]))
    return table.concat({
      string.format("    #pragma omp parallel for if((long)(%s) > 256)", size.c(size.numel(idx.shape))),
      string.format("    for (long r = 0; r < %s; r++) {", size.c(size.numel(idx.shape))),
      string.format("        const real *src = %s + (long)%s[r]*%s;", names.inputs[1], names.inputs[2], W),
      string.format("        for (long j = 0; j < %s; j++) %s[r*%s + j] = src[j];", W, names.out, W),
      "    }" }, "\n")
  end,
}

-- out[n, :] = sum of src rows whose index is n (rows of src: idx's elements)
M.ops.scatter_add = {
  infer = function(n)
    local src, idx = n.inputs[1], n.inputs[2]
    expect_int(n, idx, "scatter_add")
    if #src.shape ~= #idx.shape + 1 then
      ir.fail(n, "scatter_add: values %s do not match indices %s", size.shape_str(src.shape), size.shape_str(idx.shape))
    end
    return { n.attrs.rows, src.shape[#src.shape] }, "real"
  end,
  grad = function(F, n, g) return { F.gather(g, n.inputs[2]), nil } end,
  emit = function(n, names)
    local src, idx = n.inputs[1], n.inputs[2]
    local W = size.c(size.of_dim(src.shape[#src.shape]))
    -- rows may repeat an index: parallel over columns keeps every write race-free
    return table.concat({
      string.format("    memset(%s, 0, sizeof(real)*(size_t)(%s));", names.out, size.c(size.numel(n.shape))),
      string.format("    #pragma omp parallel for if((long)(%s) > 65536)", size.c(size.numel(src.shape))),
      string.format("    for (long j = 0; j < %s; j++)", W),
      string.format("        for (long r = 0; r < %s; r++)", size.c(size.numel(idx.shape))),
      string.format("            %s[(long)%s[r]*%s + j] += %s[r*%s + j];", names.out, names.inputs[2], W, names.inputs[1], W),
    }, "\n")
  end,
}

M.ops.onehot = {
  infer = function(n)
    local idx = n.inputs[1]
    expect_int(n, idx, "onehot")
    local out = {}
    for d, s in ipairs(idx.shape) do out[d] = s end
    out[#out + 1] = n.attrs.classes
    return out, "real"
  end,
  grad = function() return {} end,
  emit = function(n, names)
    local C = size.c(size.of_dim(n.attrs.classes))
    return table.concat({
      string.format("    for (long r = 0; r < %s; r++)", size.c(size.numel(n.inputs[1].shape))),
      string.format("        for (long j = 0; j < %s; j++) %s[r*%s + j] = (%s[r] == j) ? (real)1 : (real)0;",
        C, names.out, C, names.inputs[1]),
    }, "\n")
  end,
}

-- [rows, cols] with ones where row == col (rows and cols may be different run-time sizes)
M.ops.eye = {
  infer = function(n) return { n.attrs.rows, n.attrs.cols }, "real" end,
  emit = function(n, names)
    local R, C = size.c(size.of_dim(n.attrs.rows)), size.c(size.of_dim(n.attrs.cols))
    return string.format("    for (long r = 0; r < %s; r++)\n        for (long c = 0; c < %s; c++) %s[r*%s + c] = (r == c) ? (real)1 : (real)0;",
      R, C, names.out, C)
  end,
}

M.ops.fill = {
  infer = function(n) return n.attrs.shape, "real" end,
  emit = function(n, names)
    return string.format("    for (long i = 0; i < %s; i++) %s[i] = (real)%.17g;", size.c(size.numel(n.shape)), names.out, n.attrs.value)
  end,
}

return M
