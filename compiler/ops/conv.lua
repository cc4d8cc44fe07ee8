-- Convolutions, image by image. Each input channel of an image is copied once into a plane with
-- its zero border, split by stride phase (below), and the products are runtime/kernel_gemm.h's
-- (at these shapes, with an operand of 32-128 rows or a sum of 32-128 terms, OpenBLAS spends a
-- third of its time packing), single-threaded; the parallelism is outside, and no result depends
-- on the thread count:
-- - forward: one lane of images per thread (at most LANES), each with its own planes; where the
--   output rows are whole vectors, the kernel offsets' rows are read from the planes in place
--   (gathered_conv), else an image's columns (im2col) are built in the lane's scratch block and
--   consumed by gemm_tiled while in cache;
-- - input gradient: at stride 1, the convolution of dy by the turned kernel (gathered_conv);
--   else columns w^T . dy, a tile of output rows at a time, added into the planes (col2im);
-- - weight gradient: the input channels in a fixed number of chunks, each summing its rows of dw
--   over all images in order (no partial sums to add), its columns read from its planes in place;
-- - a single input channel (a stem): forward and weight gradient are direct loops, the forward in
--   lanes of images like the rest, the weight gradient in fixed chunks of output channels (each
--   weight a sum over the images in order).
-- The im2col and col2im ops remain for graphs that use them directly; col2im is im2col's adjoint.
-- x [N, C, H, W] <-> col [N, C*kh*kw, Ho*Wo], with Ho = (H + 2 pad - kh) / stride + 1.
local size = require("compiler.size")
local ir = require("compiler.ir")

local M = { ops = {} }

local function out_hw(a, H, W)
  return math.floor((H + 2 * a.pad - a.kh) / a.stride) + 1, math.floor((W + 2 * a.pad - a.kw) / a.stride) + 1
end
M.out_hw = out_hw

-- Both directions go through pp, one channel plane with its zero border (the padding) [HP, S, WQ]:
-- each bordered row's columns are split by phase (column j at j % S, j / S), so that every
-- column row of the columns is WO contiguous elements of pp at any stride, moved without a branch
-- (WO is a constant: a few whole vectors). The lane that owns pp zeroes it once; its border
-- stays zero.

-- the image columns ix = q*S + ph - P of phase ph in a bordered row: q in [lo, hi)
local PHASE_RANGE = "const long lo = P > ph ? (P - ph + S - 1) / S : 0, hi = W - 1 + P - ph < 0 ? 0 : (W - 1 + P - ph) / S + 1;"

-- the rows of an image plane xp [H, W] and the inner part of the bordered plane pl, copied one
-- way (to_plane) or the other
local function image_rows(pl, xp, to_plane)
  return {
    "for (long iy = 0; iy < H; iy++)",
    "    for (long ph = 0; ph < S; ph++) {",
    "        " .. PHASE_RANGE,
    "        " .. (to_plane and "" or "const ") .. "real *prow = " .. pl .. " + (iy + P)*S*WQ + ph*WQ;",
    "        " .. (to_plane and "const " or "") .. "real *xrow = " .. xp .. " + iy*W + ph - P;",
    to_plane and "        for (long q = lo; q < hi; q++) prow[q] = xrow[q*S];"
      or "        for (long q = lo; q < hi; q++) xrow[q*S] = prow[q];",
    "    }",
  }
end

-- the column rows of the output rows [oy0, oy1), row (ky, kx) at cp0 + (ky*KW + kx)*LDC, WO
-- elements per output row, read from the bordered plane pl (to_columns) or added into it
local function column_rows(pl, cp0, to_columns)
  local at_plane = pl .. " + (oy*S + ky)*S*WQ + kx % S*WQ + kx / S"
  local at_columns = cp0 .. " + (ky*KW + kx)*LDC + (oy - oy0)*WO"
  return {
    "for (long ky = 0; ky < KH; ky++)",
    "    for (long kx = 0; kx < KW; kx++)",
    "        for (long oy = oy0; oy < oy1; oy++) {",
    "            const real *src = " .. (to_columns and at_plane or at_columns) .. ";",
    "            real *dst = " .. (to_columns and at_columns or at_plane) .. ";",
    "            for (long ox = 0; ox < WO; ox++) dst[ox] " .. (to_columns and "=" or "+=") .. " src[ox];",
    "        }",
  }
end

-- im2col of one channel plane: the plane xp [H, W] into pp, then the column rows from it
local function plane_to_columns(xp, cp0)
  local lines = image_rows("pp", xp, true)
  for _, l in ipairs(column_rows("pp", cp0, true)) do lines[#lines + 1] = l end
  return lines
end

-- col2im of one channel plane, its adjoint, in two steps: the column rows added into the
-- bordered plane pl (zeroed by the caller; tiles add into the same plane), then the plane's
-- inner part written into xp [H, W], every element once
local function columns_into_plane(cp0, pl) return column_rows(pl, cp0, false) end
local function plane_into_image(pl, xp) return image_rows(pl, xp, false) end

local function indent(lines, by)
  local out = {}
  for i, l in ipairs(lines) do out[i] = by .. l end
  return table.concat(out, "\n")
end

local function constants(a, C, H, W, N)
  local Ho, Wo = out_hw(a, H, W)
  return string.format("    const long C = %d, H = %d, W = %d, KH = %d, KW = %d, S = %d, P = %d, HO = %d, WO = %d, KC = %d, NB = %s;\n" ..
    "    const long HP = H + 2*P, WP = W + 2*P, WQ = (WP + S - 1)/S; /* the image with its zero border; WQ: columns a phase */\n" ..
    "    (void)C; (void)KH; (void)KW; (void)S; (void)P; (void)KC; (void)NB; (void)HP; (void)WP; (void)WQ;", C, H, W, a.kh, a.kw, a.stride, a.pad, Ho, Wo, C * a.kh * a.kw, N)
end

local LANES = 16

-- C: the lane count for `total` units of work: one lane per thread, at most LANES and `total`
local function lane_count(total)
  return string.format("const long nt = omp_get_max_threads() < %d ? omp_get_max_threads() : %d, L = %s < nt ? %s : nt;",
    LANES, LANES, total, total)
end

-- the bordered plane's size
local function plane_size(a, H, W)
  return (H + 2 * a.pad) * a.stride * math.ceil((W + 2 * a.pad) / a.stride)
end

-- im2col / col2im over the whole batch: the (image, channel) planes split into one lane per
-- thread (at most LANES), each with its bordered plane in the workspace
local function emit_loops(n, names, C, H, W, N, gather)
  local a = n.attrs
  local lines = {
    constants(a, C, H, W, N),
    "    const long NP = NB*C;",
    "    " .. lane_count("NP"),
    "    #pragma omp parallel for schedule(static)",
    "    for (long l = 0; l < L; l++) {",
    string.format("        real *pp = %s + l*%d; /* this lane's bordered plane [HP, S, WQ] */", names.work, plane_size(a, H, W)),
    "        memset(pp, 0, sizeof(real)*(size_t)(HP*S*WQ));",
    "        for (long i = l*NP/L; i < (l + 1)*NP/L; i++) {",
    "            const long n = i / C, c = i % C, LDC = HO*WO, oy0 = 0, oy1 = HO;",
    "            " .. (gather and "const " or "") .. "real *xp = (" .. names.x .. ") + (n*C + c)*H*W;",
    "            " .. (gather and "" or "const ") .. "real *cp0 = (" .. names.col .. ") + (n*KC + c*KH*KW)*HO*WO;",
    gather and indent(plane_to_columns("xp", "cp0"), "            ")
      or "            memset(pp, 0, sizeof(real)*(size_t)(HP*S*WQ));\n" .. indent(columns_into_plane("cp0", "pp"), "            ") .. "\n" ..
        indent(plane_into_image("pp", "xp"), "            "),
    "        }",
    "    }",
  }
  return table.concat(lines, "\n")
end

-- the input of a convolution: [N, C, H, W] with C, H, W fixed, and the kernel must fit it.
-- Returns the output's height and width.
local function check_input(n, x, a)
  if #x.shape ~= 4 or size.is_sym(x.shape[2]) or size.is_sym(x.shape[3]) or size.is_sym(x.shape[4]) then
    ir.fail(n, "conv2d: input must be [N, C, H, W] with fixed C, H, W, got %s", size.shape_str(x.shape))
  end
  local Ho, Wo = out_hw(a, x.shape[3], x.shape[4])
  if Ho < 1 or Wo < 1 then
    ir.fail(n, "conv2d: a %dx%d kernel does not fit input %s with padding %d", a.kh, a.kw, size.shape_str(x.shape), a.pad)
  end
  return Ho, Wo
end

M.ops.im2col = {
  infer = function(n)
    local x, a = n.inputs[1], n.attrs
    local Ho, Wo = check_input(n, x, a)
    return { x.shape[1], x.shape[2] * a.kh * a.kw, Ho * Wo }, "real"
  end,
  grad = function(F, n, g)
    local x = n.inputs[1]
    return { F.col2im(g, x.shape, n.attrs) }
  end,
  emit = function(n, names)
    local x = n.inputs[1]
    return emit_loops(n, { x = names.inputs[1], col = names.out, work = names.work }, x.shape[2], x.shape[3], x.shape[4],
      size.c(size.of_dim(x.shape[1])), true)
  end,
  workspace = function(n) return size.mono(LANES * plane_size(n.attrs, n.inputs[1].shape[3], n.inputs[1].shape[4])) end,
}

M.ops.col2im = {
  infer = function(n)
    local col, a = n.inputs[1], n.attrs
    local xs = a.x_shape
    local Ho, Wo = out_hw(a, xs[3], xs[4])
    if not (#col.shape == 3 and col.shape[2] == xs[2] * a.kh * a.kw and col.shape[3] == Ho * Wo) then
      ir.fail(n, "col2im: columns %s do not match image %s", size.shape_str(col.shape), size.shape_str(xs))
    end
    return { xs[1], xs[2], xs[3], xs[4] }, "real"
  end,
  grad = function(F, n, g)
    return { F.im2col(g, n.attrs) }
  end,
  emit = function(n, names)
    local xs = n.attrs.x_shape
    -- every (n, c) plane is written by its own iteration only: no races
    return emit_loops(n, { x = names.out, col = names.inputs[1], work = names.work }, xs[2], xs[3], xs[4],
      size.c(size.of_dim(n.shape[1])), false)
  end,
  workspace = function(n) return size.mono(LANES * plane_size(n.attrs, n.attrs.x_shape[3], n.attrs.x_shape[4])) end,
}

local TILE = 160 * 1024 -- elements of one block of columns

local function conv_sizes(n, x_shape, w_shape, tiled)
  local a = n.attrs
  local C, H, W = x_shape[2], x_shape[3], x_shape[4]
  local Ho, Wo = out_hw(a, H, W)
  -- a 1x1 kernel with stride 1 and no padding reads the image as its own columns
  local identity = a.kh == 1 and a.kw == 1 and a.stride == 1 and a.pad == 0
  local K = C * a.kh * a.kw
  -- tiled: the columns are made for `rows` output rows at a time, so that the GEMM's block is
  -- still in L2 when col2im reads it (the input gradient of a 32-channel 32x32 layer, 1.2 MB of
  -- columns a image, ran 10% faster in two tiles; forward and weight gradient, which read their
  -- columns once in order, ran no faster)
  local rows = Ho
  if tiled and not identity and K * Ho * Wo > TILE then
    local tiles = math.ceil(Ho / math.max(1, math.floor(TILE / (K * Wo))))
    rows = math.ceil(Ho / tiles)
  end
  -- ldc: the columns' row stride, a tile's columns rounded up to whole vectors and one vector
  -- more, so that rows are never a multiple of 4 KiB apart (such rows share an L1 set, and the
  -- GEMM reads 8 of them at a time)
  local ldc = math.ceil(rows * Wo / 16) * 16 + 16
  -- cols: one lane's block of columns; plane: then one channel plane with its zero border
  return { N = size.c(size.of_dim(x_shape[1])), C = C, H = H, W = W, O = w_shape[1], K = K, HW = Ho * Wo,
    identity = identity, rows = rows, WO = Wo, ldc = ldc, cols = identity and 0 or K * ldc,
    plane = (identity and C > 1) and 0 or plane_size(a, H, W) } -- a single channel: the direct loops
end

-- the loop over tiles of output rows [oy0, oy1), NT = (oy1 - oy0)*WO columns each; `body` lines.
-- Untiled: one block, the whole image.
local function row_tiles(z, body)
  local lines = {
    string.format("for (long oy0 = 0; oy0 < HO; oy0 += %d) {", z.rows),
    string.format("    const long oy1 = oy0 + %d < HO ? oy0 + %d : HO, NT = (oy1 - oy0)*WO; (void)NT;", z.rows, z.rows),
  }
  if z.rows == z.HW / z.WO then lines = { "{", "    const long oy0 = 0, oy1 = HO, NT = HO*WO;" } end
  lines[#lines + 1] = string.format("    const long LDC = %d; /* the columns' row stride */ (void)LDC;", z.ldc)
  for _, b in ipairs(body) do lines[#lines + 1] = "    " .. b:gsub("\n", "\n    ") end
  lines[#lines + 1] = "}"
  return lines
end

-- the workspace: per lane, its columns block and its bordered plane
local function lanes_workspace(z) return size.mono(LANES * (z.cols + z.plane)) end

-- the lane loop: one lane per thread (at most LANES), so a thread's scratch block stays in its
-- cache from image to image; images [l*NB/L, (l+1)*NB/L) of lane l. `body` sees n, col (this
-- lane's columns; with no im2col, col_expr names the image) and pp (its bordered plane); or,
-- given `scratch`, a block of per_lane elements of that name instead.
local function lanes(z, names, body, col_expr, scratch, per_lane, scratch_shape)
  local lines = {
    "    " .. lane_count("NB"),
    "    #pragma omp parallel for schedule(static)",
    "    for (long l = 0; l < L; l++) {",
  }
  if scratch then
    lines[#lines + 1] = string.format("        real *%s = %s + l*%s; /* this lane's %s */", scratch, names.work, per_lane, scratch_shape)
    lines[#lines + 1] = string.format("        memset(%s, 0, sizeof(real)*%d);", scratch, per_lane)
  elseif not z.identity then
    lines[#lines + 1] = string.format("        real *col = %s + l*%d; /* this lane's columns, a tile at a time [K, NT] (row stride LDC) */", names.work, z.cols + z.plane)
    lines[#lines + 1] = string.format("        real *pp = col + %d; /* bordered channel planes, each [HP, S, WQ] */", z.cols)
    lines[#lines + 1] = string.format("        memset(pp, 0, sizeof(real)*%d);", z.plane)
  end
  lines[#lines + 1] = "        for (long n = l*NB/L; n < (l + 1)*NB/L; n++) {"
  if z.identity and col_expr then lines[#lines + 1] = "            " .. col_expr end
  for _, b in ipairs(body) do lines[#lines + 1] = "            " .. b:gsub("\n", "\n            ") end
  lines[#lines + 1] = "        }"
  lines[#lines + 1] = "    }"
  return lines
end

-- one tile of image n's columns: col [K, NT] (output rows [oy0, oy1); row stride LDC) from
-- image n of x; or, given c0 and c1 (C expressions), the rows of channels [c0, c1) only
local function im2col_image(x, c0, c1)
  return {
    string.format("for (long c = %s; c < %s; c++) {", c0 or "0", c1 or "C"),
    "    const real *xp = " .. x .. " + (n*C + c)*H*W;",
    indent(plane_to_columns("xp", "col + (c - " .. (c0 or "0") .. ")*KH*KW*LDC"), "    "),
    "}",
  }
end

local function conv_flops(n, x_shape, w_shape)
  local z = conv_sizes(n, x_shape, w_shape)
  return size.mul(size.of_dim(x_shape[1]), size.mono(2 * z.O * z.K * z.HW))
end

-- A single input channel: the columns would be KH*KW copies of the image, so the loops read the
-- image directly, from its bordered plane pp (as im2col does) so that every kernel offset's loop
-- over output columns is branch-free, contiguous and vectorises.

-- per lane (one per thread): per image, its bordered plane, then each output plane as the bias
-- plus the kernel offsets' products, summed in offset order
local function direct_forward(n, names, z)
  local body = image_rows("pp", names.inputs[1] .. " + n*H*W", true)
  for _, l in ipairs({
    string.format("for (long o = 0; o < %d; o++) {", z.O),
    string.format("    real *yp = %s + (n*%d + o)*HO*WO; /* [HO, WO] */", names.out, z.O),
    "    const real *wo = " .. names.inputs[2] .. " + o*KH*KW;",
    string.format("    const real bo = %s;", n.inputs[3] and names.inputs[3] .. "[o]" or "(real)0"),
    "    for (long oy = 0; oy < HO; oy++) {",
    "        #pragma omp simd",
    "        for (long ox = 0; ox < WO; ox++) {",
    "            real s = bo;",
    "            for (long ky = 0; ky < KH; ky++)",
    "                for (long kx = 0; kx < KW; kx++) s += wo[ky*KW + kx]*pp[(oy*S + ky)*S*WQ + kx % S*WQ + kx / S + ox];",
    "            yp[oy*WO + ox] = s;",
    "        }",
    "    }",
    "}",
  }) do body[#body + 1] = l end
  local lines = { constants(n.attrs, z.C, z.H, z.W, z.N) }
  for _, l in ipairs(lanes({}, names, body, nil, "pp", z.plane, "[HP, S, WQ]")) do lines[#lines + 1] = l end
  return table.concat(lines, "\n")
end

-- dw [O, 1, KH, KW]: the output channels in fixed chunks run in parallel; a chunk walks the images
-- in order, and per output channel and kernel offset keeps VL partial sums (one per column mod VL,
-- so the loop over columns vectorises), added up at the end: no result depends on the thread count
local VL = 16
local function direct_chunks(z) return math.min(z.O, 4) end

local function direct_weight_grad(n, names, z)
  local chunks = direct_chunks(z)
  local dy, x = names.inputs[1], names.inputs[2]
  local lines = {
    constants(n.attrs, z.C, z.H, z.W, z.N),
    string.format("    real *acc = %s + %d; /* [O, KH*KW, %d] */", names.work, chunks * z.plane, VL),
    "    #pragma omp parallel for schedule(static)",
    string.format("    for (long q = 0; q < %d; q++) {", chunks),
    string.format("        const long o0 = q*%d/%d, o1 = (q + 1)*%d/%d;", z.O, chunks, z.O, chunks),
    string.format("        real *pp = %s + q*%d; /* this chunk's bordered plane [HP, S, WQ] */", names.work, z.plane),
    string.format("        memset(pp, 0, sizeof(real)*%d);", z.plane),
    string.format("        memset(acc + o0*KH*KW*%d, 0, sizeof(real)*(size_t)((o1 - o0)*KH*KW*%d));", VL, VL),
    "        for (long n = 0; n < NB; n++) {",
    indent(image_rows("pp", x .. " + n*H*W", true), "            "),
    "            for (long o = o0; o < o1; o++) {",
    string.format("                real *a = acc + o*KH*KW*%d;", VL),
    string.format("                const real *dyp = %s + (n*%d + o)*HO*WO; /* [HO, WO] */", dy, z.O),
    "                for (long oy = 0; oy < HO; oy++)",
    string.format("                    for (long ox0 = 0; ox0 < WO; ox0 += %d) {", VL),
    string.format("                        const long m = WO - ox0 < %d ? WO - ox0 : %d;", VL, VL),
    "                        for (long ky = 0; ky < KH; ky++)",
    "                            for (long kx = 0; kx < KW; kx++) {",
    string.format("                                real *at = a + (ky*KW + kx)*%d;", VL),
    "                                const real *xr = pp + (oy*S + ky)*S*WQ + kx % S*WQ + kx / S + ox0, *dr = dyp + oy*WO + ox0;",
    "                                #pragma omp simd",
    "                                for (long j = 0; j < m; j++) at[j] += dr[j]*xr[j];",
    "                            }",
    "                    }",
    "            }",
    "        }",
    "    }",
    string.format("    for (long o = 0; o < %d; o++)", z.O),
    "        for (long t = 0; t < KH*KW; t++) {",
    string.format("            const real *at = acc + (o*KH*KW + t)*%d;", VL),
    "            real s = 0;",
    string.format("            for (long j = 0; j < %d; j++) s += at[j];", VL),
    string.format("            %s[o*KH*KW + t] = s;", names.out),
    "        }",
  }
  return table.concat(lines, "\n")
end

local function direct_weight_grad_workspace(z)
  return size.mono(direct_chunks(z) * z.plane + z.O * z.K * VL)
end

-- A convolution read in place: no columns are built. Per image, each input channel is copied once
-- into its bordered plane (as im2col does first), and gemm_gathered (runtime/kernel_gemm.h) forms
-- 32 output pixels at a time for every output channel, reading kernel offset (c, ky, kx)'s row of
-- the product from the planes through a table of offsets: with the planes split by stride phase,
-- each output row's pixels are contiguous there. The sums run in the same order as through
-- columns, so the results are the same, without writing and rereading 9 copies of the image.
-- Output rows must be whole vectors (WO a multiple of 16): 32 pixels are one or two output rows.
--   a: the kernel's attributes; x [N, C, H, W] (x_expr), y [N, O, HO, WO] (y_expr);
--   w_expr: the kernel as [O, C*KH*KW]; bias_expr: [O] or nil.
-- C: image n's channels [c0, c1) of x copied into the bordered planes pp, PL elements apart
local function image_planes(x, c0, c1)
  local lines = { string.format("for (long c = %s; c < %s; c++) {", c0, c1) }
  local at = c0 == "0" and "c" or "(c - " .. c0 .. ")"
  for _, l in ipairs(image_rows("pp + " .. at .. "*PL", x .. " + (n*C + c)*H*W", true)) do lines[#lines + 1] = "    " .. l end
  lines[#lines + 1] = "}"
  return lines
end

-- C: off [channels*KH*KW], kernel offset (c, ky, kx)'s first element in planes PL apart, at
-- output pixel (0, 0)
local function plane_offsets(channels)
  return {
    "    const long PL = HP*S*WQ; /* one bordered plane */",
    string.format("    int off[%s]; /* kernel offset (c, ky, kx): its first element in the planes, at output pixel (0, 0) */", channels .. "*KH*KW"),
    string.format("    for (long c = 0; c < %s; c++)", channels),
    "        for (long ky = 0; ky < KH; ky++)",
    "            for (long kx = 0; kx < KW; kx++) off[(c*KH + ky)*KW + kx] = (int)(c*PL + ky*S*WQ + kx % S*WQ + kx / S);",
  }
end

-- C: the bias b [O] added to image n's output planes yn [O, HO, WO]
local function add_bias(yn, O, bias)
  return {
    string.format("for (long o = 0; o < %d; o++) {", O),
    string.format("    real *yp = %s + o*HO*WO; const real bo = %s[o];", yn, bias),
    "    for (long p = 0; p < HO*WO; p++) yp[p] += bo;",
    "}",
  }
end

local function gathered_fits(a, C, H, W)
  local _, Wo = out_hw(a, H, W)
  return C > 1 and Wo % 16 == 0
end

local function gathered_conv(a, C, H, W, O, N, x_expr, w_expr, y_expr, work, bias_expr)
  local plane = plane_size(a, H, W)
  local _, Wo = out_hw(a, H, W)
  local body = image_planes(x_expr, "0", "C")
  body[#body + 1] = string.format("real *yn = %s + n*%d*HO*WO; /* [O, HO, WO] */", y_expr, O)
  if Wo >= 32 then -- 32 pixels of one output row (16 at the row's end if WO is an odd multiple of 16)
    body[#body + 1] = "for (long oy = 0; oy < HO; oy++)"
    body[#body + 1] = "    for (long ox = 0; ox < WO; ox += 32) {"
    body[#body + 1] = "        const real *b = pp + oy*S*S*WQ + ox;"
    body[#body + 1] = string.format("        gemm_gathered(%d, WO - ox < 32 ? WO - ox : 32, KC, %s, KC, off, b, b + 16, yn + oy*WO + ox, HO*WO);", O, w_expr)
    body[#body + 1] = "    }"
  else -- WO = 16: two output rows (one for the last of an odd count)
    body[#body + 1] = "for (long oy = 0; oy < HO; oy += 2)"
    body[#body + 1] = string.format("    gemm_gathered(%d, oy + 1 < HO ? 32 : 16, KC, %s, KC, off, pp + oy*S*S*WQ, pp + (oy + 1)*S*S*WQ, yn + oy*WO, HO*WO);", O, w_expr)
  end
  if bias_expr then
    for _, l in ipairs(add_bias("yn", O, bias_expr)) do body[#body + 1] = l end
  end
  local lines = { constants(a, C, H, W, N) }
  for _, l in ipairs(plane_offsets("C")) do lines[#lines + 1] = l end
  for _, l in ipairs(lanes({}, { work = work }, body, nil, "pp", C * plane, "bordered planes [C, HP, S, WQ]")) do lines[#lines + 1] = l end
  return table.concat(lines, "\n")
end

-- y [N, O, Ho, Wo] = conv(x [N, C, H, W], w [O, C, kh, kw]) + b [O]
M.ops.conv2d = {
  infer = function(n)
    local x, w, a = n.inputs[1], n.inputs[2], n.attrs
    local Ho, Wo = check_input(n, x, a)
    local b = n.inputs[3]
    if b and not (#b.shape == 1 and b.shape[1] == w.shape[1]) then
      ir.fail(n, "conv2d: bias %s does not match the kernel's %s output channels", size.shape_str(b.shape), tostring(w.shape[1]))
    end
    return { x.shape[1], w.shape[1], Ho, Wo }, "real"
  end,
  grad = function(F, n, g)
    local x, w, b = n.inputs[1], n.inputs[2], n.inputs[3]
    local gb
    if b then
      local O = w.shape[1]
      gb = F.reshape(F.sum(F.sum(F.reshape(g, { g.shape[1], O, g.shape[3] * g.shape[4] }), 3), 1), { O })
    end
    return { F.conv2d_input_grad(g, w, n.attrs, x.shape), F.conv2d_weight_grad(g, x, n.attrs, w.shape), gb }
  end,
  workspace = function(n)
    local z = conv_sizes(n, n.inputs[1].shape, n.inputs[2].shape)
    if z.C == 1 then return size.mono(LANES * z.plane) end
    if not z.identity and gathered_fits(n.attrs, z.C, z.H, z.W) then return size.mono(LANES * z.C * z.plane) end
    return lanes_workspace(z)
  end,
  emit = function(n, names)
    local x, w = n.inputs[1], n.inputs[2]
    local z = conv_sizes(n, x.shape, w.shape)
    if z.C == 1 then return direct_forward(n, names, z) end
    if not z.identity and gathered_fits(n.attrs, z.C, z.H, z.W) then
      return gathered_conv(n.attrs, z.C, z.H, z.W, z.O, z.N, names.inputs[1], names.inputs[2], names.out, names.work,
        n.inputs[3] and names.inputs[3])
    end
    local body
    if z.identity then
      body = { string.format("gemm_tiled(0, %d, HO*WO, KC, %s, KC, col, HO*WO, 0, %s + n*%d*HO*WO, HO*WO);",
        z.O, names.inputs[2], names.out, z.O) }
    else
      -- per tile: y[:, tile] = w . col
      local tile = im2col_image(names.inputs[1])
      tile[#tile + 1] = string.format("gemm_tiled(0, %d, NT, KC, %s, KC, col, LDC, 0, %s + n*%d*HO*WO + oy0*WO, HO*WO);",
        z.O, names.inputs[2], names.out, z.O)
      body = row_tiles(z, tile)
    end
    if n.inputs[3] then
      for _, l in ipairs(add_bias(string.format("(%s + n*%d*HO*WO)", names.out, z.O), z.O, names.inputs[3])) do body[#body + 1] = l end
    end
    local lines = { constants(n.attrs, z.C, z.H, z.W, z.N) }
    for _, l in ipairs(lanes(z, names, body, "const real *col = " .. names.inputs[1] .. " + n*C*H*W;")) do
      lines[#lines + 1] = l
    end
    return table.concat(lines, "\n")
  end,
  -- one image's GEMM [O, K] x [K, HO*WO]; none for the direct loops (profiling, see matmul)
  gemm_shape = function(n)
    local z = conv_sizes(n, n.inputs[1].shape, n.inputs[2].shape)
    if z.C == 1 then return nil end
    return { size.mono(z.O), size.mono(z.HW), size.mono(z.K) }
  end,
  flops = function(n) return conv_flops(n, n.inputs[1].shape, n.inputs[2].shape) end,
}

-- dx [N, C, H, W] from dy [N, O, Ho, Wo] and w [O, C, kh, kw]. At stride 1, a convolution of dy
-- (input_grad_as_conv); else per image col = w^T . dy, a tile of output rows at a time, added
-- into a bordered plane for every channel of the image (col2im), then written into dx.
local function input_grad_sizes(n)
  local z = conv_sizes(n, n.attrs.x_shape, n.inputs[2].shape, true)
  z.plane = z.identity and 0 or z.plane * z.C
  return z
end

-- At stride 1, dx is itself a convolution, read in place: of dy, with padding KH-1-P, by the
-- kernel turned half a turn with its channel axes swapped, wt [C, O, KH, KW] =
-- w[o, c, KH-1-ky, KW-1-kx]. Returns that convolution's attributes, or nil where it does not apply.
local function input_grad_as_conv(n)
  local a, z = n.attrs, input_grad_sizes(n)
  if z.identity or a.stride ~= 1 or a.kh ~= a.kw or a.pad > a.kh - 1 then return nil end
  local t = { kh = a.kh, kw = a.kw, stride = 1, pad = a.kh - 1 - a.pad }
  if not gathered_fits(t, z.O, z.HW / z.WO, z.WO) then return nil end
  local H, W = out_hw(t, z.HW / z.WO, z.WO)
  assert(H == z.H and W == z.W)
  return t, z
end

local function input_grad_conv(n, names, t, z)
  local turned = z.O * z.K
  local lines = {
    "    /* dx [N, C, H, W] as the convolution of dy [N, O, HO, WO]: below, after the kernel is turned,",
    "     * C, H, W name dy's sizes and HO, WO dx's */",
    string.format("    real *wt = %s; /* the kernel turned: [C, O*KH*KW] */", names.work),
    string.format("    for (long c = 0; c < %d; c++)", z.C),
    string.format("        for (long o = 0; o < %d; o++)", z.O),
    string.format("            for (long t = 0; t < %d; t++) wt[(c*%d + o)*%d + t] = %s[(o*%d + c)*%d + %d - t];",
      t.kh * t.kw, z.O, t.kh * t.kw, names.inputs[2], z.C, t.kh * t.kw, t.kh * t.kw - 1),
    gathered_conv(t, z.O, z.HW / z.WO, z.WO, z.C, z.N, names.inputs[1], "wt", names.out, names.work .. " + " .. turned),
  }
  return table.concat(lines, "\n")
end

M.ops.conv2d_input_grad = {
  infer = function(n) return n.attrs.x_shape, "real" end,
  workspace = function(n)
    local t, z = input_grad_as_conv(n)
    if t then return size.mono(z.O * z.K + LANES * z.O * plane_size(t, z.HW / z.WO, z.WO)) end
    return lanes_workspace(input_grad_sizes(n))
  end,
  emit = function(n, names)
    local t, zt = input_grad_as_conv(n)
    if t then return input_grad_conv(n, names, t, zt) end
    local z = input_grad_sizes(n)
    local body
    if z.identity then
      body = { string.format("gemm_tiled(1, KC, HO*WO, %d, %s, KC, %s + n*%d*HO*WO, HO*WO, 0, %s + n*C*H*W, HO*WO);",
        z.O, names.inputs[2], names.inputs[1], z.O, names.out) }
    else
      -- per tile: col = w^T . dy[:, tile], added into the image's bordered channel planes (tiles'
      -- input rows overlap); then the planes written into dx
      body = { "memset(pp, 0, sizeof(real)*(size_t)(C*HP*S*WQ));" }
      for _, l in ipairs(row_tiles(z, {
        string.format("gemm_tiled(1, KC, NT, %d, %s, KC, %s + n*%d*HO*WO + oy0*WO, HO*WO, 0, col, LDC);",
          z.O, names.inputs[2], names.inputs[1], z.O),
        "for (long c = 0; c < C; c++) {",
        indent(columns_into_plane("col + c*KH*KW*LDC", "pp + c*HP*S*WQ"), "    "),
        "}",
      })) do body[#body + 1] = l end
      body[#body + 1] = "for (long c = 0; c < C; c++)"
      body[#body + 1] = indent(plane_into_image("pp + c*HP*S*WQ", names.out .. " + (n*C + c)*H*W"), "    ")
    end
    local lines = { constants(n.attrs, z.C, z.H, z.W, z.N) }
    for _, l in ipairs(lanes(z, names, body)) do lines[#lines + 1] = l end
    return table.concat(lines, "\n")
  end,
  -- one image's GEMM [K, O] x [O, HO*WO]
  gemm_shape = function(n)
    local z = conv_sizes(n, n.attrs.x_shape, n.inputs[2].shape)
    return { size.mono(z.K), size.mono(z.HW), size.mono(z.O) }
  end,
  flops = function(n) return conv_flops(n, n.attrs.x_shape, n.inputs[2].shape) end,
}

-- dw [O, C, kh, kw] from dy [N, O, Ho, Wo] and x [N, C, H, W].
-- With several input channels: the channels are split into `chunks` fixed groups, run in
-- parallel; a group sums, over the images in order, col_n . dy_n^T into its rows of acc [KC, O]
-- (col_n: its channels' columns of image n), then acc is transposed into dw. The product is
-- computed transposed, [rows, O], so that 8 rows by 32 output channels stay in registers for the
-- whole sum over the image's pixels: gemm_gathered_sum reads the columns in place from the
-- group's bordered planes, one output row's pixels at a time, and dy_n^T, which all threads
-- transpose first (a few percent of the product's time). A 1x1 kernel with stride 1 and no
-- padding reads the image itself (gemm_tiled).
-- With one input channel: direct_weight_grad.
local function weight_grad_chunks(z)
  if z.C < 2 then return nil end
  -- enough rows per product to keep it efficient (OpenBLAS lost 10-20% below ~144 rows), and at
  -- least two chunks for two threads
  return math.min(z.C, 4, math.max(2, math.floor(z.K / 144)))
end

-- one chunk's block: the bordered planes of its channels
local function weight_grad_chunk_size(z, chunks)
  return z.identity and 0 or math.ceil(z.C / chunks) * z.plane
end

-- the workspace: each chunk's block, acc [KC, O], then the image's dy transposed [HO*WO, O]
local function weight_grad_workspace(z, chunks)
  return chunks * weight_grad_chunk_size(z, chunks) + z.K * z.O + z.HW * z.O
end

-- C: dyt [HO*WO, O] = dy_n^T, 16 pixels at a time so that the reads are whole cache lines and the
-- writes stay in L1
local function transpose_dy(dy, O)
  return {
    "for (long p0 = 0; p0 < HO*WO; p0 += 16)",
    string.format("    for (long o = 0; o < %d; o++) {", O),
    string.format("        const real *dyo = %s + (n*%d + o)*HO*WO;", dy, O),
    string.format("        for (long p = p0; p < p0 + 16 && p < HO*WO; p++) dyt[p*%d + o] = dyo[p];", O),
    "    }",
  }
end

local function weight_grad_by_channels(n, names, z, chunks)
  local per_chunk = weight_grad_chunk_size(z, chunks)
  local x, dy = names.inputs[2], names.inputs[1]
  local chunk_body
  if z.identity then
    chunk_body = {
      "const real *col = " .. x .. " + n*C*H*W + c0*H*W;",
      string.format("gemm_tiled(0, (c1 - c0)*KH*KW, %d, HO*WO, col, HO*WO, dyt, %d, n == 0 ? 0 : 1, acc + c0*KH*KW*%d, %d);",
        z.O, z.O, z.O, z.O),
    }
  else
    -- acc[chunk rows] += col_n . dy_n^T, the columns read from the planes
    chunk_body = { string.format("real *pp = %s + q*%d; /* this chunk's bordered planes [c1 - c0, HP, S, WQ] */", names.work, per_chunk) }
    for _, l in ipairs(image_planes(x, "c0", "c1")) do chunk_body[#chunk_body + 1] = l end
    chunk_body[#chunk_body + 1] = string.format("gemm_gathered_sum((c1 - c0)*KH*KW, %d, HO, WO, pp, off, S*S*WQ, dyt, %d, n == 0 ? 0 : 1, acc + c0*KH*KW*%d, %d);",
      z.O, z.O, z.O, z.O)
  end
  local lines = {
    constants(n.attrs, z.C, z.H, z.W, z.N),
    string.format("    real *acc = %s + %d; /* [KC, O] */", names.work, chunks * per_chunk),
    string.format("    real *dyt = %s + %d; /* dy of image n, transposed [HO*WO, O] */", names.work, chunks * per_chunk + z.K * z.O),
  }
  if not z.identity then
    lines[#lines + 1] = "    /* the offsets of a chunk's channels c - c0: every chunk's planes have the same layout */"
    for _, l in ipairs(plane_offsets(tostring(math.ceil(z.C / chunks)))) do lines[#lines + 1] = l end
    lines[#lines + 1] = string.format("    memset(%s, 0, sizeof(real)*%d); /* the planes' borders */", names.work, chunks * per_chunk)
  end
  -- per image: all threads transpose dy_n, then each chunk adds its product (the barriers
  -- between the two loops keep dyt whole while the chunks read it)
  lines[#lines + 1] = "    #pragma omp parallel"
  lines[#lines + 1] = "    for (long n = 0; n < NB; n++) {"
  lines[#lines + 1] = "        #pragma omp for schedule(static)"
  for _, l in ipairs(transpose_dy(dy, z.O)) do lines[#lines + 1] = "        " .. l end
  lines[#lines + 1] = "        #pragma omp for schedule(static)"
  lines[#lines + 1] = string.format("        for (long q = 0; q < %d; q++) {", chunks)
  lines[#lines + 1] = string.format("            const long c0 = q*C/%d, c1 = (q + 1)*C/%d;", chunks, chunks)
  for _, b in ipairs(chunk_body) do lines[#lines + 1] = "            " .. b:gsub("\n", "\n            ") end
  lines[#lines + 1] = "        }"
  lines[#lines + 1] = "    }"
  -- no images: dw is zero (the products above never ran)
  lines[#lines + 1] = string.format("    if (NB == 0) memset(acc, 0, sizeof(real)*%d);", z.K * z.O)
  lines[#lines + 1] = string.format("    #pragma omp parallel for if(%d > 32768)", z.O * z.K)
  lines[#lines + 1] = string.format("    for (long o = 0; o < %d; o++)", z.O)
  lines[#lines + 1] = string.format("        for (long k = 0; k < KC; k++) %s[o*KC + k] = acc[k*%d + o];", names.out, z.O)
  return table.concat(lines, "\n")
end

M.ops.conv2d_weight_grad = {
  infer = function(n) return n.attrs.w_shape, "real" end,
  -- each chunk's planes, acc [KC, O] and dy transposed; with a single input channel, each
  -- chunk's padded image, then the partial sums
  workspace = function(n)
    local z = conv_sizes(n, n.inputs[2].shape, n.attrs.w_shape)
    local chunks = weight_grad_chunks(z)
    if not chunks then return direct_weight_grad_workspace(z) end
    return size.mono(weight_grad_workspace(z, chunks))
  end,
  emit = function(n, names)
    local z = conv_sizes(n, n.inputs[2].shape, n.attrs.w_shape)
    local chunks = weight_grad_chunks(z)
    if not chunks then return direct_weight_grad(n, names, z) end
    return weight_grad_by_channels(n, names, z, chunks)
  end,
  -- one chunk's GEMM for one image, [rows, HO*WO] x [HO*WO, O]; none for the direct loops
  gemm_shape = function(n)
    local z = conv_sizes(n, n.inputs[2].shape, n.attrs.w_shape)
    local chunks = weight_grad_chunks(z)
    if not chunks then return nil end
    return { size.mono(math.ceil(z.C / chunks) * (z.K / z.C)), size.mono(z.O), size.mono(z.HW) }
  end,
  flops = function(n) return conv_flops(n, n.inputs[2].shape, n.attrs.w_shape) end,
}

return M
