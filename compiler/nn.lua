-- Composite ops, written in primitives: their gradients come from the primitives' rules, and the
-- fusion pass sees through them. Each function follows the usual definition line by line.
local size = require("compiler.size")
local ir = require("compiler.ir")

local M = {}

function M.new(F)
  local nn = {}

  -- the largest `denominator` we allow a masked reduction to see: a fully masked row sums to 0,
  -- and max(0, TINY) keeps the division finite so the row comes out as zeros, not NaN
  local TINY = 1e-30

  -- softmax along `axis`; with a 0/1 mask (broadcastable to x) masked entries get probability 0
  -- and a row with no valid entry is all zeros
  function nn.softmax(x, axis, mask)
    axis = F.axis_of(x, axis or -1)
    if not mask then
      local e = F.exp(F.sub(x, F.detach(F.max(x, axis))))
      return F.div(e, F.sum(e, axis))
    end
    -- masked entries are pushed far below the row's max before exp, then zeroed exactly
    local xm = F.add(F.mul(x, mask), F.scale(F.addc(F.neg(mask), 1), -1e9))
    local e = F.mul(F.exp(F.sub(xm, F.detach(F.max(xm, axis)))), mask)
    return F.div(e, F.clamp_min(F.sum(e, axis), TINY))
  end

  -- log sum exp along `axis` (kept as size 1), optionally over the masked entries only
  function nn.logsumexp(x, axis, mask)
    axis = F.axis_of(x, axis or -1)
    if mask then x = F.add(F.mul(x, mask), F.scale(F.addc(F.neg(mask), 1), -1e9)) end
    local m = F.detach(F.max(x, axis))
    local e = F.exp(F.sub(x, m))
    if mask then e = F.mul(e, mask) end
    return F.add(F.log(F.clamp_min(F.sum(e, axis), TINY)), m)
  end

  -- x / max(||x||, eps) along `axis`; max(sqrt(s), eps) = sqrt(max(s, eps^2)) keeps the
  -- gradient finite at zero vectors
  function nn.l2norm(x, axis, eps)
    axis = F.axis_of(x, axis or -1)
    eps = eps or 1e-6
    return F.mul(x, F.rsqrt(F.clamp_min(F.sum(F.square(x), axis), eps * eps)))
  end

  -- normalise over the last axis, then scale and shift (gamma, beta: [last]) if given
  function nn.layer_norm(x, gamma, beta, eps)
    eps = eps or 1e-5
    local xc = F.sub(x, F.mean(x, -1))
    local y = F.mul(xc, F.rsqrt(F.addc(F.mean(F.square(xc), -1), eps)))
    if gamma then y = F.mul(y, gamma) end
    if beta then y = F.add(y, beta) end
    return y
  end

  -- x: [N, C, H, W]; statistics over each group of C/groups channels and all positions
  function nn.group_norm(x, groups, gamma, beta, eps)
    eps = eps or 1e-5
    local N, C, H, W = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    if #x.shape ~= 4 then ir.fail(nil, "group_norm: expected [N, C, H, W], got %s", size.shape_str(x.shape)) end
    if C % groups ~= 0 then ir.fail(nil, "group_norm: %d channels do not split into %d groups", C, groups) end
    -- with both affine parameters: the GroupNorm kernels (compiler/ops/norm.lua)
    if gamma and beta then
      local stats = F.make("group_norm_stats", { x }, { groups = groups, eps = eps })
      return F.make("group_norm", { x, stats, gamma, beta }, { groups = groups })
    end
    local xg = F.reshape(x, { N, groups, math.floor(C / groups) * H * W })
    local xc = F.sub(xg, F.mean(xg, -1))
    local y = F.mul(xc, F.rsqrt(F.addc(F.mean(F.square(xc), -1), eps)))
    y = F.reshape(y, { N, C, H, W })
    if gamma then y = F.mul(y, F.reshape(gamma, { C, 1, 1 })) end
    if beta then y = F.add(y, F.reshape(beta, { C, 1, 1 })) end
    return y
  end

  -- x: [..., in], W: [out, in] (PyTorch layout), b: [out]
  function nn.linear(x, W, b)
    local y = F.matmul(x, W, { tb = true })
    if b then y = F.add(y, b) end
    return y
  end

  -- x: [N, C, H, W], w: [O, C, kh, kw], b: [O]
  function nn.conv2d(x, w, b, stride, pad)
    stride, pad = stride or 1, pad or 0
    if #w.shape ~= 4 or #x.shape ~= 4 then
      ir.fail(nil, "conv2d: expected x [N,C,H,W] and w [O,C,kh,kw], got %s and %s", size.shape_str(x.shape), size.shape_str(w.shape))
    end
    if w.shape[2] ~= x.shape[2] then
      ir.fail(nil, "conv2d: input %s has %s channels, kernel %s expects %s", size.shape_str(x.shape), tostring(x.shape[2]),
        size.shape_str(w.shape), tostring(w.shape[2]))
    end
    return F.conv2d(x, w, b, { kh = w.shape[3], kw = w.shape[4], stride = stride, pad = pad })
  end

  -- k x k mean pooling with stride k over [N, C, H, W]
  function nn.avg_pool(x, k)
    local N, C, H, W = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    if H % k ~= 0 or W % k ~= 0 then ir.fail(nil, "avg_pool: %dx%d does not divide %s", k, k, size.shape_str(x.shape)) end
    local y = F.reshape(x, { N, C, math.floor(H / k), k, math.floor(W / k), k })
    y = F.sum(F.sum(y, 6), 4)
    return F.scale(F.reshape(y, { N, C, math.floor(H / k), math.floor(W / k) }), 1 / (k * k))
  end

  -- mean over the listed axes (kept as size 1)
  function nn.mean_over(x, axes)
    local y = x
    for _, a in ipairs(axes) do y = F.mean(y, a) end
    return y
  end

  -- nearest-neighbour upsampling by 2 of [N, C, H, W]
  function nn.upsample2(x)
    local N, C, H, W = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    local y = F.expand(F.reshape(x, { N, C, H, 1, W, 1 }), { N, C, H, 2, W, 2 })
    return F.reshape(y, { N, C, 2 * H, 2 * W })
  end

  -- per-row cross-entropy: logits [N, C], integer targets [N] -> [N]
  function nn.cross_entropy(logits, targets)
    local C = logits.shape[#logits.shape]
    local picked = F.sum(F.mul(logits, F.onehot(targets, C)), -1)
    return F.reshape(F.sub(nn.logsumexp(logits, -1), picked), { logits.shape[1] })
  end

  -- element-wise binary cross-entropy with logits, the stable form
  -- max(x, 0) - x*y + log(1 + exp(-|x|))
  function nn.bce_with_logits(x, y)
    return F.add(F.sub(F.relu(x), F.mul(x, y)), F.log(F.addc(F.exp(F.neg(F.abs(x))), 1)))
  end

  -- sum over `axis` of x * w, counting only entries where mask is 1
  function nn.weighted_sum(x, w, axis, mask)
    local p = F.mul(x, w)
    if mask then p = F.mul(p, mask) end
    return F.sum(p, axis)
  end

  return nn
end

return M
