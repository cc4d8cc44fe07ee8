-- GroupNorm as four kernels, two per direction, each one pass over the activations:
--   group_norm_stats  x [N, C, ...] -> [N, G, 2]: each group's mean and 1/sqrt(var + eps)
--   group_norm        x, stats, gamma [C], beta [C] -> y = (x - mean) * rstd * gamma + beta, or
--                     its ReLU (attrs.relu, folded in by passes/epilogue.lua)
--   group_norm_sums   dy, x, stats -> [N, C, 2]: per image and channel, sum dy and sum dy * xhat
--   group_norm_grad_x dy, x, stats, gamma, sums -> dx
--   (the last two with attrs.relu, also from passes/epilogue.lua, take the gradient of that ReLU's
--   output, beta as one more input, and mask it themselves)
-- Composed from element-wise ops and reductions, the same norm takes about nine passes over the
-- activations in the backward direction alone (each reduction's operands and the gradient's terms
-- are separate tensors). The statistics carry no gradient of their own: group_norm's gradient
-- rule is the whole one, through the mean and the variance.
local size = require("compiler.size")
local ir = require("compiler.ir")
local elementwise = require("compiler.ops.elementwise")

local M = { ops = {} }

-- N (C code), C, G, channels per group, elements per channel (the dimensions after C)
local function dims(x_shape, groups)
  local S = 1
  for d = 3, #x_shape do S = S * x_shape[d] end
  return size.c(size.of_dim(x_shape[1])), x_shape[2], groups, math.floor(x_shape[2] / groups), S
end

local function header(N, C, G, CG, S)
  return string.format("    const long N = %s, C = %d, G = %d, CG = %d, S = %d; /* images, channels, groups, channels per group, elements per channel */\n" ..
    "    (void)C;", N, C, G, CG, S)
end

local function check_x(n, x, groups)
  if #x.shape < 3 or size.is_sym(x.shape[2]) then
    ir.fail(n, "group_norm: expected [N, C, ...] with a fixed C, got %s", size.shape_str(x.shape))
  end
  for d = 3, #x.shape do
    if size.is_sym(x.shape[d]) then ir.fail(n, "group_norm: the dimensions after C must be fixed, got %s", size.shape_str(x.shape)) end
  end
  if x.shape[2] % groups ~= 0 then ir.fail(n, "group_norm: %d channels do not split into %d groups", x.shape[2], groups) end
end

M.ops.group_norm_stats = {
  nodiff = true,
  infer = function(n)
    local x = n.inputs[1]
    check_x(n, x, n.attrs.groups)
    return { x.shape[1], n.attrs.groups, 2 }, "real"
  end,
  emit = function(n, names)
    local N, C, G, CG, S = dims(n.inputs[1].shape, n.attrs.groups)
    local x, out = names.inputs[1], names.out
    return table.concat({
      header(N, C, G, CG, S),
      "    #pragma omp parallel for",
      "    for (long ng = 0; ng < N*G; ng++) {",
      "        const real *xp = " .. x .. " + ng*CG*S; /* the group's CG*S elements are contiguous */",
      "        real sum = 0, sq = 0;",
      "        #pragma omp simd reduction(+:sum)",
      "        for (long i = 0; i < CG*S; i++) sum += xp[i];",
      "        const real mean = sum * ((real)1 / (real)(CG*S));",
      "        /* the variance from the centred values: no cancellation when the mean is large */",
      "        #pragma omp simd reduction(+:sq)",
      "        for (long i = 0; i < CG*S; i++) sq += (xp[i] - mean) * (xp[i] - mean);",
      string.format("        %s[ng*2] = mean;", out),
      string.format("        %s[ng*2 + 1] = (real)1 / sqrt(sq * ((real)1 / (real)(CG*S)) + (real)%.17g);", out, n.attrs.eps),
      "    }",
    }, "\n")
  end,
  flops = function(n) return size.mul(size.numel(n.inputs[1].shape), size.mono(4)) end,
}

M.ops.group_norm = {
  infer = function(n)
    local x, stats, gamma, beta = n.inputs[1], n.inputs[2], n.inputs[3], n.inputs[4]
    check_x(n, x, n.attrs.groups)
    for _, p in ipairs({ gamma, beta }) do
      if not (#p.shape == 1 and p.shape[1] == x.shape[2]) then
        ir.fail(n, "group_norm: gamma and beta must be [%d], got %s", x.shape[2], size.shape_str(p.shape))
      end
    end
    if not (#stats.shape == 3 and stats.shape[2] == n.attrs.groups and stats.shape[3] == 2) then
      ir.fail(n, "internal: group_norm statistics %s", size.shape_str(stats.shape))
    end
    return x.shape, "real"
  end,
  grad = function(F, n, g)
    local x, stats, gamma = n.inputs[1], n.inputs[2], n.inputs[3]
    local C = x.shape[2]
    local sums = F.make("group_norm_sums", { g, x, stats }, { groups = n.attrs.groups })      -- [N, C, 2]
    local dx = F.make("group_norm_grad_x", { g, x, stats, gamma, sums }, { groups = n.attrs.groups })
    local per_channel = F.reshape(F.sum(sums, 1), { C, 2 })                                    -- summed over images
    local dbeta = F.reshape(F.slice(per_channel, 2, 0, 1), { C })
    local dgamma = F.reshape(F.slice(per_channel, 2, 1, 1), { C })
    return { dx, nil, dgamma, dbeta }
  end,
  emit = function(n, names)
    local N, C, G, CG, S = dims(n.inputs[1].shape, n.attrs.groups)
    local x, stats, gamma, beta = names.inputs[1], names.inputs[2], names.inputs[3], names.inputs[4]
    return table.concat({
      header(N, C, G, CG, S),
      "    #pragma omp parallel for",
      "    for (long nc = 0; nc < N*C; nc++) {",
      "        const long c = nc % C, ng = (nc / C)*G + c / CG;",
      string.format("        const real mean = %s[ng*2], rstd = %s[ng*2 + 1], gc = %s[c], bc = %s[c];", stats, stats, gamma, beta),
      "        const real *xp = " .. x .. " + nc*S;",
      "        real *yp = " .. names.out .. " + nc*S;",
      "        for (long i = 0; i < S; i++) { const real v = (xp[i] - mean) * rstd * gc + bc; yp[i] = " ..
        (n.attrs.relu and elementwise.FNS.relu.c({ "v" }) or "v") .. "; }",
      "    }",
    }, "\n")
  end,
  flops = function(n) return size.mul(size.numel(n.inputs[1].shape), size.mono(n.attrs.relu and 5 or 4)) end,
}

-- with attrs.relu (passes/epilogue.lua): dy masked by the ReLU that followed the GroupNorm, its
-- input recomputed exactly as group_norm computed it, ((x - mean) * rstd) * gamma + beta
local function relu_masked(g) return "(xh * gc + bc > 0 ? " .. g .. " : (real)0)" end

-- the given lines, skipping nils (lines that only some variants have), one per line
local function lines(...)
  local out = {}
  for i = 1, select("#", ...) do
    local l = select(i, ...)
    if l then out[#out + 1] = l end
  end
  return table.concat(out, "\n")
end

M.ops.group_norm_sums = {
  infer = function(n)
    local x = n.inputs[2]
    return { x.shape[1], x.shape[2], 2 }, "real"
  end,
  emit = function(n, names)
    local N, C, G, CG, S = dims(n.inputs[2].shape, n.attrs.groups)
    local dy, x, stats = names.inputs[1], names.inputs[2], names.inputs[3]
    return lines(
      header(N, C, G, CG, S),
      "    #pragma omp parallel for",
      "    for (long nc = 0; nc < N*C; nc++) {",
      "        const long c = nc % C, ng = (nc / C)*G + c / CG;",
      string.format("        const real mean = %s[ng*2], rstd = %s[ng*2 + 1];", stats, stats),
      n.attrs.relu and string.format("        const real gc = %s[c], bc = %s[c];", names.inputs[4], names.inputs[5]) or nil,
      "        const real *gp = " .. dy .. " + nc*S, *xp = " .. x .. " + nc*S;",
      "        real s0 = 0, s1 = 0;",
      "        #pragma omp simd reduction(+:s0, s1)",
      "        for (long i = 0; i < S; i++) {",
      "            const real xh = (xp[i] - mean) * rstd;",
      "            const real g = " .. (n.attrs.relu and relu_masked("gp[i]") or "gp[i]") .. ";",
      "            s0 += g; s1 += g * xh;",
      "        }",
      string.format("        %s[nc*2] = s0;", names.out),
      string.format("        %s[nc*2 + 1] = s1;", names.out),
      "    }")
  end,
  flops = function(n) return size.mul(size.numel(n.inputs[2].shape), size.mono(n.attrs.relu and 8 or 5)) end,
}

-- dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) with dxhat = dy * gamma, the
-- means over the group; both means come from the per-channel sums
M.ops.group_norm_grad_x = {
  infer = function(n) return n.inputs[2].shape, "real" end,
  emit = function(n, names)
    local N, C, G, CG, S = dims(n.inputs[2].shape, n.attrs.groups)
    local dy, x, stats, gamma, sums = names.inputs[1], names.inputs[2], names.inputs[3], names.inputs[4], names.inputs[5]
    return lines(
      header(N, C, G, CG, S),
      "    #pragma omp parallel for",
      "    for (long ng = 0; ng < N*G; ng++) {",
      "        const long n = ng / G, g = ng % G;",
      string.format("        const real mean = %s[ng*2], rstd = %s[ng*2 + 1];", stats, stats),
      "        real a = 0, b = 0; /* mean(dxhat), mean(dxhat * xhat) over the group */",
      "        for (long k = 0; k < CG; k++) {",
      "            const long c = g*CG + k;",
      string.format("            a += %s[c] * %s[(n*C + c)*2];", gamma, sums),
      string.format("            b += %s[c] * %s[(n*C + c)*2 + 1];", gamma, sums),
      "        }",
      "        a *= (real)1 / (real)(CG*S);",
      "        b *= (real)1 / (real)(CG*S);",
      "        for (long k = 0; k < CG; k++) {",
      "            const long c = g*CG + k;",
      string.format("            const real gc = %s[c];", gamma),
      "            const real *gp = " .. dy .. " + (n*C + c)*S, *xp = " .. x .. " + (n*C + c)*S;",
      "            real *dp = " .. names.out .. " + (n*C + c)*S;",
      n.attrs.relu and string.format("            const real bc = %s[c];", names.inputs[6]) or nil,
      "            for (long i = 0; i < S; i++) {",
      "                const real xh = (xp[i] - mean) * rstd;",
      "                dp[i] = rstd * (" .. (n.attrs.relu and relu_masked("gp[i]") or "gp[i]") .. " * gc - a - xh * b);",
      "            }",
      "        }",
      "    }")
  end,
  flops = function(n) return size.mul(size.numel(n.inputs[2].shape), size.mono(n.attrs.relu and 10 or 7)) end,
}

return M
