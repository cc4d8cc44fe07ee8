-- Reductions along one axis (kept as size 1): sum and max.
local size = require("compiler.size")
local ir = require("compiler.ir")

local M = { ops = {} }

-- the input viewed as [outer, n, inner] around the reduced axis
local function split(shape, axis)
  return size.prod(shape, 1, axis - 1), size.of_dim(shape[axis]), size.prod(shape, axis + 1, #shape)
end
M.split = split

M.ops.reduce = {
  infer = function(n)
    local x, axis = n.inputs[1], n.attrs.axis
    if axis < 1 or axis > #x.shape then
      ir.fail(n, "%s: axis %d out of range for shape %s", n.attrs.kind, axis, size.shape_str(x.shape))
    end
    local out = {}
    for d, s in ipairs(x.shape) do out[d] = (d == axis) and 1 or s end
    return out, "real"
  end,
  grad = function(F, n, g)
    local x = n.inputs[1]
    if n.attrs.kind == "sum" then return { F.expand(g, x.shape) } end
    -- max: the gradient flows to the maximal element(s)
    return { F.mul(F.expand(g, x.shape), F.eq(x, F.expand(n, x.shape))) }
  end,
  emit = function(n, names)
    local outer, len, inner = split(n.inputs[1].shape, n.attrs.axis)
    local O, L, I = size.c(outer), size.c(len), size.c(inner)
    local init = n.attrs.kind == "sum" and "(real)0" or "-INFINITY"
    local function acc(a, v)
      if n.attrs.kind == "sum" then return a .. " += " .. v .. ";" end
      return string.format("if (%s > %s) %s = %s;", v, a, a, v)
    end
    local x, y = names.inputs[1], names.out
    local total = size.c(size.mul(size.mul(outer, len), inner))
    if size.is_const(inner) and inner.c == 1 then
      return table.concat({
        string.format("    #pragma omp parallel for if((long)(%s) > 32768)", total),
        string.format("    for (long o = 0; o < %s; o++) {", O),
        string.format("        real a = %s;", init),
        string.format("        const real *row = %s + o*%s;", x, L),
        -- one partial result per vector lane; the order is fixed by the build, not the threads
        string.format("        #pragma omp simd reduction(%s:a)", n.attrs.kind == "sum" and "+" or "max"),
        string.format("        for (long j = 0; j < %s; j++) %s", L, acc("a", "row[j]")),
        string.format("        %s[o] = a;", y),
        "    }" }, "\n")
    end
    -- a reduction across rows (the axis is not the last): walk the rows in order and keep a
    -- block of 256 running results, so every read is contiguous and the inner loop vectorises
    local upd = n.attrs.kind == "sum" and "a[i - ib] += row[i];" or "if (row[i] > a[i - ib]) a[i - ib] = row[i];"
    return table.concat({
      string.format("    const long nblk = (%s + 255) / 256;", I),
      string.format("    #pragma omp parallel for collapse(2) if((long)(%s) > 32768)", total),
      string.format("    for (long o = 0; o < %s; o++)", O),
      "        for (long b = 0; b < nblk; b++) {",
      string.format("            const long ib = b*256, ie = ib + 256 < %s ? ib + 256 : %s;", I, I),
      "            real a[256];",
      string.format("            for (long i = ib; i < ie; i++) a[i - ib] = %s;", init),
      string.format("            for (long j = 0; j < %s; j++) {", L),
      string.format("                const real *row = %s + (o*%s + j)*%s;", x, L, I),
      "                for (long i = ib; i < ie; i++) " .. upd,
      "            }",
      string.format("            for (long i = ib; i < ie; i++) %s[o*%s + i] = a[i - ib];", y, I),
      "        }" }, "\n")
  end,
  flops = function(n) return size.numel(n.inputs[1].shape) end,
}

return M
