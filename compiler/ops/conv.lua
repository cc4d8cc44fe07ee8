-- Convolutions lower to im2col + GEMM; col2im is im2col's adjoint (their gradients are each other).
-- x [N, C, H, W] <-> col [N, C*kh*kw, Ho*Wo], with Ho = (H + 2 pad - kh) / stride + 1, or with
-- rows_outer, col [C*kh*kw, N*Ho*Wo]: the whole batch's columns side by side, so that the
-- convolution is one GEMM (weights [O, C*kh*kw] x col) rather than one small GEMM per image.
local size = require("compiler.size")
local ir = require("compiler.ir")

local M = { ops = {} }

local function out_hw(a, H, W)
  return math.floor((H + 2 * a.pad - a.kh) / a.stride) + 1, math.floor((W + 2 * a.pad - a.kw) / a.stride) + 1
end
M.out_hw = out_hw

-- the loops shared by both directions. Per kernel offset (ky, kx) and output row, the output
-- columns that read inside the image form one range [lo, hi): the loop over it has no branch
-- and vectorises; padding is the columns outside it. `gather` moves x into col (im2col), else
-- col is added into x (col2im).
local function emit_loops(n, names, C, H, W, N, gather)
  local a = n.attrs
  local Ho, Wo = out_hw(a, H, W)
  local K = C * a.kh * a.kw
  local row
  if gather then
    row = {
      "                        if (iy < 0 || iy >= H) { for (long ox = 0; ox < WO; ox++) crow[ox] = (real)0; continue; }",
      "                        const real *xrow = xp + iy*W;",
      "                        for (long ox = 0; ox < lo; ox++) crow[ox] = (real)0;",
      "                        for (long ox = lo; ox < hi; ox++) crow[ox] = xrow[ox*S - P + kx];",
      "                        for (long ox = hi; ox < WO; ox++) crow[ox] = (real)0;",
    }
  else
    row = {
      "                        if (iy < 0 || iy >= H) continue;",
      "                        real *xrow = xp + iy*W;",
      "                        for (long ox = lo; ox < hi; ox++) xrow[ox*S - P + kx] += crow[ox];",
    }
  end
  local lines = {
    string.format("    const long C = %d, H = %d, W = %d, KH = %d, KW = %d, S = %d, P = %d, HO = %d, WO = %d, KC = %d, NB = %s;",
      C, H, W, a.kh, a.kw, a.stride, a.pad, Ho, Wo, K, N),
    "    (void)KC; (void)NB;",
    "    #pragma omp parallel for collapse(2)",
    string.format("    for (long n = 0; n < %s; n++)", N),
    "        for (long c = 0; c < C; c++) {",
    "            " .. (gather and "const " or "") .. "real *xp = X + (n*C + c)*H*W;",
    "            for (long ky = 0; ky < KH; ky++)",
    "                for (long kx = 0; kx < KW; kx++) {",
    "                    " .. (gather and "" or "const ") .. "real *cp = COL + " .. (n.attrs.rows_outer and "(((c*KH + ky)*KW + kx)*NB + n)*HO*WO;" or "(n*KC + (c*KH + ky)*KW + kx)*HO*WO;"),
    "                    /* columns ox with 0 <= ox*S - P + kx < W */",
    "                    long lo = P > kx ? (P - kx + S - 1) / S : 0, hi = W - 1 + P - kx < 0 ? 0 : (W - 1 + P - kx) / S + 1;",
    "                    if (hi > WO) hi = WO;",
    "                    if (lo > hi) lo = hi;",
    "                    for (long oy = 0; oy < HO; oy++) {",
    "                        long iy = oy*S - P + ky;",
    "                        " .. (gather and "" or "const ") .. "real *crow = cp + oy*WO;",
  }
  for _, l in ipairs(row) do lines[#lines + 1] = l end
  lines[#lines + 1] = "                    }"
  lines[#lines + 1] = "                }"
  lines[#lines + 1] = "        }"
  return (table.concat(lines, "\n"):gsub("X %+", "(" .. names.x .. ") +"):gsub("COL %+", "(" .. names.col .. ") +"))
end

M.ops.im2col = {
  infer = function(n)
    local x, a = n.inputs[1], n.attrs
    if #x.shape ~= 4 or size.is_sym(x.shape[2]) or size.is_sym(x.shape[3]) or size.is_sym(x.shape[4]) then
      ir.fail(n, "conv2d: input must be [N, C, H, W] with fixed C, H, W, got %s", size.shape_str(x.shape))
    end
    local Ho, Wo = out_hw(a, x.shape[3], x.shape[4])
    if Ho < 1 or Wo < 1 then
      ir.fail(n, "conv2d: a %dx%d kernel does not fit input %s with padding %d", a.kh, a.kw, size.shape_str(x.shape), a.pad)
    end
    if a.rows_outer then
      return { x.shape[2] * a.kh * a.kw, size.dim_of(size.mul(size.of_dim(x.shape[1]), size.mono(Ho * Wo))) }, "real"
    end
    return { x.shape[1], x.shape[2] * a.kh * a.kw, Ho * Wo }, "real"
  end,
  grad = function(F, n, g)
    local x = n.inputs[1]
    return { F.col2im(g, x.shape, n.attrs) }
  end,
  emit = function(n, names)
    local x = n.inputs[1]
    return emit_loops(n, { x = names.inputs[1], col = names.out }, x.shape[2], x.shape[3], x.shape[4],
      size.c(size.of_dim(x.shape[1])), true)
  end,
}

M.ops.col2im = {
  infer = function(n)
    local col, a = n.inputs[1], n.attrs
    local xs = a.x_shape
    local Ho, Wo = out_hw(a, xs[3], xs[4])
    local ok
    if a.rows_outer then
      ok = #col.shape == 2 and col.shape[1] == xs[2] * a.kh * a.kw
        and size.eq(size.of_dim(col.shape[2]), size.mul(size.of_dim(xs[1]), size.mono(Ho * Wo)))
    else
      ok = #col.shape == 3 and col.shape[2] == xs[2] * a.kh * a.kw and col.shape[3] == Ho * Wo
    end
    if not ok then
      ir.fail(n, "col2im: columns %s do not match image %s", size.shape_str(col.shape), size.shape_str(xs))
    end
    return { xs[1], xs[2], xs[3], xs[4] }, "real"
  end,
  grad = function(F, n, g)
    return { F.im2col(g, n.attrs) }
  end,
  emit = function(n, names)
    local xs = n.attrs.x_shape
    -- every (n, c) plane is written by its own iteration: no races
    local zero = string.format("    memset(%s, 0, sizeof(real)*(size_t)(%s));\n", names.out, size.c(size.numel(n.shape)))
    return zero .. emit_loops(n, { x = names.out, col = names.inputs[1] }, xs[2], xs[3], xs[4],
      size.c(size.of_dim(n.shape[1])), false)
  end,
}

return M
