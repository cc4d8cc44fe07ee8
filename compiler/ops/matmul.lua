-- Batched matrix products through cblas_?gemm. Batch dimensions broadcast (numpy rules);
-- op(A) is A or its transpose (ta), likewise op(B) (tb). C = op(A) . op(B).
local size = require("compiler.size")
local ir = require("compiler.ir")
local elementwise = require("compiler.ops.elementwise")
local loops = require("compiler.loops")
local fused = require("compiler.ops.fused")

local M = { ops = {} }

local function mat_dims(x, t) -- rows, cols of op(X)
  local r, c = x.shape[#x.shape - 1], x.shape[#x.shape]
  if t then return c, r end
  return r, c
end

local function batch_of(shape)
  local b = {}
  for d = 1, #shape - 2 do b[d] = shape[d] end
  return b
end

M.ops.matmul = {
  infer = function(n)
    local a, b = n.inputs[1], n.inputs[2]
    if #a.shape < 2 or #b.shape < 2 then
      ir.fail(n, "matmul needs matrices, got shapes %s and %s", size.shape_str(a.shape), size.shape_str(b.shape))
    end
    local m, k1 = mat_dims(a, n.attrs.ta)
    local k2, nn = mat_dims(b, n.attrs.tb)
    if k1 ~= k2 then
      ir.fail(n, "matmul: inner dimensions differ: %s%s x %s%s (%s vs %s)", size.shape_str(a.shape),
        n.attrs.ta and "^T" or "", size.shape_str(b.shape), n.attrs.tb and "^T" or "", tostring(k1), tostring(k2))
    end
    local batch = elementwise.broadcast({ batch_of(a.shape), batch_of(b.shape) }, "matmul (batch dimensions)", n)
    batch[#batch + 1] = m
    batch[#batch + 1] = nn
    return batch, "real"
  end,
  grad = function(F, n, g)
    local a, b = n.inputs[1], n.inputs[2]
    local ta, tb = n.attrs.ta or false, n.attrs.tb or false
    local da, db
    -- d op(A) = g . op(B)^T ; d op(B) = op(A)^T . g
    if not ta then da = F.matmul(g, b, { tb = not tb }) else da = F.matmul(b, g, { ta = tb, tb = true }) end
    if not tb then db = F.matmul(a, g, { ta = not ta }) else db = F.matmul(g, a, { ta = true, tb = ta }) end
    return { F.sum_to(da, a.shape), F.sum_to(db, b.shape) }
  end,
  emit = function(n, names)
    local a, b = n.inputs[1], n.inputs[2]
    local ta, tb = n.attrs.ta, n.attrs.tb
    local ep = n.attrs.epilogue
    local m, k = mat_dims(a, ta)
    local _, nn = mat_dims(b, tb)
    local M_, N_, K_ = size.c(size.of_dim(m)), size.c(size.of_dim(nn)), size.c(size.of_dim(k))
    local lda = ta and M_ or K_
    local ldb = tb and K_ or N_
    local call = function(rows, ao, bo, co, beta)
      return string.format("GEMM(CblasRowMajor, %s, %s, %s, %s, %s, (real)1, %s + %s, %s, %s + %s, %s, %s, %s + %s, %s);",
        ta and "CblasTrans" or "CblasNoTrans", tb and "CblasTrans" or "CblasNoTrans", rows, N_, K_,
        names.inputs[1], ao, lda, names.inputs[2], bo, ldb, beta or "(real)0", names.out, co, N_)
    end
    -- an epilogue may read the product through a reshape: the kernel loops over the product's shape
    local shape = n.attrs.product_shape or n.shape
    local batch = batch_of(shape)
    -- the epilogue's leaves other than the product: strides against the product's shape
    local leaf_st = {}
    if ep then
      local function walk(t)
        if t.leaf then
          if t.k ~= ep.self and not leaf_st[t.k] then
            leaf_st[t.k] = loops.broadcast_strides(ep.views[t.k] or t.leaf.shape, shape)
          end
        elseif t.args then for _, x in ipairs(t.args) do walk(x) end end
      end
      walk(ep.expr)
    end
    -- the epilogue, in place over rows [lo, hi) of the block at `co`; leaf k of this block starts at lb<k>
    local function epilogue(lo, hi, co, indent, par)
      local nd = #shape
      local expr = fused.map_expr(ep.expr, function(t)
        if t.k == ep.self then return "o[c]" end
        local st = leaf_st[t.k]
        local idx = { "lb" .. t.k }
        if st[nd - 1] then idx[#idx + 1] = "r*" .. size.c(st[nd - 1]) end
        if st[nd] then idx[#idx + 1] = (size.is_const(st[nd]) and st[nd].c == 1) and "c" or ("c*" .. size.c(st[nd])) end
        return names.inputs[ep.slot[t.k]] .. "[" .. table.concat(idx, " + ") .. "]"
      end)
      return table.concat({
        indent .. "/* epilogue (" .. ep.name .. "), in place while the block is in cache */",
        indent .. par,
        indent .. string.format("for (long r = %s; r < %s; r++) {", lo, hi),
        indent .. string.format("    real *o = %s + %s + r*%s;", names.out, co, N_),
        indent .. "    #pragma omp simd",
        indent .. string.format("    for (long c = 0; c < %s; c++) o[c] = %s;", N_, expr),
        indent .. "}",
      }, "\n")
    end
    local leaves = {}
    for kk in pairs(leaf_st) do leaves[#leaves + 1] = kk end
    table.sort(leaves)
    if #batch == 0 then
      -- row panels spread over the threads, each GEMM single-threaded (OpenBLAS runs so inside a
      -- parallel region; its own threading gains little below a few hundred MFLOP here), with the
      -- epilogue on each panel while it is in cache. With an epilogue, panels of about 128k
      -- elements; the panel count is a multiple of the thread count. A row's values do not depend
      -- on the panels: each is one GEMM over all of K. With fewer than 8 rows a thread, one GEMM
      -- keeps OpenBLAS's own threads.
      local lines = {
        string.format("    const long m_rows = %s, n_thr = omp_get_max_threads();", M_),
        -- without an epilogue, one panel a thread: each GEMM call packs the right operand again
        ep and string.format("    long np = (m_rows*(%s) + 131071) / 131072;", N_) or "    long np = 1;",
        "    if (np < n_thr) np = n_thr;",
        "    np = (np + n_thr - 1) / n_thr * n_thr;",
        "    if (m_rows < 8*n_thr) np = 1;",
        "    const long panel = (m_rows + np - 1) / np;",
        string.format("    #pragma omp parallel for schedule(static) if(np > 1 && (double)m_rows*(%s)*(%s) > 1e6)", N_, K_),
        "    for (long pi = 0; pi < np; pi++) {",
        "        const long r0 = pi*panel;",
        "        if (r0 >= m_rows) continue;",
        "        const long pm = m_rows - r0 < panel ? m_rows - r0 : panel;",
        "        " .. call("pm", ta and "r0" or ("r0*" .. K_), "0", "r0*" .. N_),
      }
      if ep then
        for _, kk in ipairs(leaves) do lines[#lines + 1] = string.format("        const long lb%d = 0;", kk) end
        lines[#lines + 1] = epilogue("r0", "r0 + pm", "0", "        ", "/* (the panel loop holds the threads) */")
      end
      lines[#lines + 1] = "    }"
      return table.concat(lines, "\n")
    end
    -- per-batch offsets: broadcast strides of each operand's batch part, in units of its matrix.
    -- A sum over one batch axis of the product (passes/accumulate.lua) loops over the other axes;
    -- per output block, the GEMMs along the summed axis accumulate into it in order.
    local pb = n.attrs.product_batch or batch
    local ax = n.attrs.sum_axis
    local sa = loops.broadcast_strides(batch_of(a.shape), pb)
    local sb = loops.broadcast_strides(batch_of(b.shape), pb)
    local amat = size.mul(size.of_dim(a.shape[#a.shape - 1]), size.of_dim(a.shape[#a.shape]))
    local bmat = size.mul(size.of_dim(b.shape[#b.shape - 1]), size.of_dim(b.shape[#b.shape]))
    local outer = {}
    for d = 1, #pb do if d ~= ax then outer[#outer + 1] = pb[d] end end
    local decl = "        long r = p, ao = 0, bo = 0"
    for _, kk in ipairs(leaves) do decl = decl .. ", lb" .. kk .. " = 0" end
    local lines = {
      string.format("    const long nb = %s;", size.c(size.prod(outer))),
      "    /* one GEMM per batch entry: spread them over the threads (OpenBLAS runs single-threaded",
      "     * inside a parallel region); a single GEMM keeps OpenBLAS's own threads */",
      "    #pragma omp parallel for schedule(static) if(nb > 1)",
      "    for (long p = 0; p < nb; p++) {",
      decl .. ";",
    }
    for d = #pb, 1, -1 do
      if d ~= ax then
        local ext = size.c(size.of_dim(pb[d]))
        local parts = { string.format("long i%d = r %% %s; r /= %s;", d, ext, ext) }
        if sa[d] then parts[#parts + 1] = string.format("ao += i%d*%s;", d, size.c(size.mul(sa[d], amat))) end
        if sb[d] then parts[#parts + 1] = string.format("bo += i%d*%s;", d, size.c(size.mul(sb[d], bmat))) end
        for _, kk in ipairs(leaves) do
          local st = leaf_st[kk][d]
          if st then parts[#parts + 1] = string.format("lb%d += i%d*%s;", kk, d, size.c(st)) end
        end
        lines[#lines + 1] = "        { " .. table.concat(parts, " ") .. " }"
      end
    end
    lines[#lines + 1] = "        (void)r;"
    local co = "p*" .. size.c(size.mul(size.of_dim(m), size.of_dim(nn)))
    if ax then
      local step_a = sa[ax] and size.c(size.mul(sa[ax], amat)) or "0"
      local step_b = sb[ax] and size.c(size.mul(sb[ax], bmat)) or "0"
      lines[#lines + 1] = string.format("        for (long j = 0; j < %s; j++)", size.c(size.of_dim(pb[ax])))
      lines[#lines + 1] = "            " .. call(M_, "ao + j*" .. step_a, "bo + j*" .. step_b, co, "j ? (real)1 : (real)0")
    else
      lines[#lines + 1] = "        " .. call(M_, "ao", "bo", co)
    end
    if ep then lines[#lines + 1] = epilogue("0", M_, co, "        ", "/* (the batch loop holds the threads) */") end
    lines[#lines + 1] = "    }"
    return table.concat(lines, "\n")
  end,
  -- one GEMM call's m, n, k (profiling: make bench's peak at a matching shape)
  gemm_shape = function(n)
    local m, k = mat_dims(n.inputs[1], n.attrs.ta)
    local _, nn = mat_dims(n.inputs[2], n.attrs.tb)
    return { size.of_dim(m), size.of_dim(nn), size.of_dim(k) }
  end,
  flops = function(n)
    local a = n.inputs[1]
    local _, k = mat_dims(a, n.attrs.ta)
    local f = size.mul(size.mul(size.numel(n.shape), size.of_dim(k)), size.mono(2))
    if n.attrs.sum_axis then f = size.mul(f, size.of_dim(n.attrs.product_batch[n.attrs.sum_axis])) end
    local ep = n.attrs.epilogue
    if ep and size.signature(ep.flops) == size.signature(f) then f = size.mono(f.c + ep.flops.c, f.s) end
    return f
  end,
}

return M
