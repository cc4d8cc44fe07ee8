-- The fusion pass (compiler/passes/fuse.lua): what it fuses, what it must not, and that values
-- do not change.
local gradcheck = require("compiler.gradcheck")
local T = {}

local function kinds(g)
  local k = {}
  for _, n in ipairs(g.schedule) do
    if n.op ~= "input" and n.op ~= "param" then k[#k + 1] = n.op == "map" and n.attrs.fn or n.op end
  end
  return k
end

local function count(list, what)
  local c = 0
  for _, v in ipairs(list) do if v == what then c = c + 1 end end
  return c
end

function T.elementwise_chain_is_one_kernel(t)
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 4 })
    g.output("y", g.exp(x * 2 + 1) / 3)
  end, "fuse_chain")
  local k = kinds(g)
  t.eq(#k, 1, table.concat(k, " "))
  t.eq(k[1], "fused")
  t.eq(g.schedule[#g.schedule].attrs.name, "scale_exp_addc_scale")
end

function T.a_value_used_twice_is_kept(t)
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 4 })
    local e = g.exp(x)
    g.output("y", e * e + e)
  end, "fuse_twice")
  -- exp is read three times: it stays a kernel of its own and the rest fuses around it
  t.eq(count(kinds(g), "exp"), 1)
end

function T.reduction_takes_its_prologue(t)
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x, y = g.input("x", { B, 5 }), g.input("y", { B, 5 })
    g.output("s", g.sum(x * y, -1))
  end, "fuse_prologue")
  local k = kinds(g)
  t.eq(#k, 1, table.concat(k, " "))
  t.eq(g.schedule[#g.schedule].attrs.expr.reduce, "sum")
end

function T.norm_epilogue_inlines_its_reduction(t)
  -- rsqrt(mean(x^2) + eps): the reduction becomes a per-row sub-expression of one kernel
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 6 })
    g.output("r", g.rsqrt(g.mean(g.square(x), -1) + 1e-5))
  end, "fuse_epilogue")
  local k = kinds(g)
  t.eq(#k, 1, table.concat(k, " "))
end

-- a fused reduction's loop may keep one partial result per vector lane (without it the sum is a
-- chain of dependent adds), and the kernel goes parallel on its whole work, not on its outputs:
-- a [B, 8] output of rows of 16384 must not run on one thread
function T.fused_reductions_vectorise_and_weigh_their_length(t)
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 8, 16384 })
    g.output("r", g.rsqrt(g.mean(g.square(x), -1) + 1e-5))
  end, "fuse_simd")
  local c = require("compiler.emit_c").emit(g)
  t.contains(c, "#pragma omp simd reduction(+:r1)")
  t.contains(c, "#pragma omp parallel for if((long)(131072*B) > 32768)")
  t.ok(not c:find("parallel for simd if%(%(long%)%(8%*B%)"), "the outer loop of a kernel with a reduction loop is not simd")
end

-- x - mean(x) is read by the variance and by the normalisation: both recompute it, so it is not
-- stored; exp(x) read twice is not cheap and stays a kernel of its own
function T.cheap_value_read_twice_is_recomputed(t)
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 4, 16 })
    local xc = x - g.mean(x, -1)
    g.output("y", xc * g.rsqrt(g.mean(g.square(xc), -1) + 1e-5))
  end, "fuse_recompute")
  local k = kinds(g)
  t.eq(count(k, "sub"), 0, table.concat(k, " "))
  t.eq(count(k, "fused"), #k, table.concat(k, " "))
  t.eq(#k, 3, table.concat(k, " ")) -- mean; variance (recomputing x - mean); normalisation
  local g2 = t.compile_optimized(function(g)
    local B = g.dim("B")
    local e = g.exp(g.input("x", { B, 4, 16 }))
    g.output("y", e * g.sum(e, -1))
  end, "fuse_no_recompute")
  t.eq(count(kinds(g2), "exp"), 1, table.concat(kinds(g2), " "))
end

-- GroupNorm with its affine parameters: one pass for the statistics and one to normalise, and
-- in the backward one pass for the per-channel sums and one for dx (compiler/ops/norm.lua)
function T.group_norm_is_two_passes_each_way(t)
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 6, 4, 5 }, { grad = true })
    local y = g.group_norm(x, 3, g.param("gn.weight", { 6 }), g.param("gn.bias", { 6 }))
    g.loss(g.sum_all(y * g.input("r", { B, 6, 4, 5 })))
  end, "gn_passes")
  local k = kinds(g)
  for _, op in ipairs({ "group_norm_stats", "group_norm", "group_norm_sums", "group_norm_grad_x" }) do
    t.eq(count(k, op), 1, op .. " in " .. table.concat(k, " "))
  end
end

function T.reductions_across_rows_keep_their_kernel(t)
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 5 })
    g.output("s", g.sum(g.exp(x), 1))
  end, "fuse_rows")
  local k = kinds(g)
  t.eq(count(k, "reduce"), 1, table.concat(k, " "))
  t.eq(count(k, "exp"), 1, table.concat(k, " "))
end

function T.outputs_and_phases_are_boundaries(t)
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local w = g.param("w", { 4 })
    local x = g.input("x", { B, 4 })
    local h = g.tanh(x * w) -- an output: must stay materialised
    g.output("h", h)
    g.loss(g.sum_all(h * h))
  end, "fuse_bounds")
  local out = g.outputs[2].node
  t.ok(out.op == "map" or out.op == "fused", out.op)
  for _, n in ipairs(g.schedule) do
    if n.op == "fused" then
      for _, c in ipairs(n.fused_from.covered) do
        t.ok(c.phase == n.phase, "a fused kernel mixes forward and backward nodes")
        t.ok(c ~= out, "the output was inlined")
      end
    end
  end
end

function T.values_do_not_change(t)
  local build = function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 3, 6 })
    local m = g.input("m", { B, 1, 6 }, { role = "mask" })
    local gamma, beta = g.param("ln.weight", { 6 }), g.param("ln.bias", { 6 })
    local y = g.softmax(g.layer_norm(x, gamma, beta) * 3, -1, m)
    g.loss(g.sum_all(y * g.l2norm(x, -1)) + g.sum_all(g.logsumexp(x, 1)))
  end
  local plain, fused = t.compile(build, "fv_plain"), t.compile_optimized(build, "fv_fused")
  t.ok(fused.stats_fused > 0)
  local opts = { dims = { B = 3 }, loss_only = true, workdir = t.tmpdir() }
  local l1, l2 = gradcheck.run(plain, t.root, opts), gradcheck.run(fused, t.root, opts)
  t.ok(math.abs(l1 - l2) <= 1e-12 * math.max(1, math.abs(l1)), string.format("%.17g vs %.17g", l1, l2))
end

return T
