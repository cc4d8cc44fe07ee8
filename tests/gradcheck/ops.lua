-- One small graph per op (and per interesting variant of it). Each returns a tensor y; the
-- runner makes the loss sum(y * R) with a fixed random R, so every element of y matters.
-- Inputs take gradients unless marked; run-time sizes are B = 3, T = 2 unless a case sets them.
local cases = {}
local function case(name, build, dims) cases[#cases + 1] = { name = name, build = build, dims = dims } end

local function x(g, name, shape, opt) return g.input(name, shape, opt) end

-- matrix products
case("matmul", function(g) local B = g.dim("B"); return g.matmul(x(g, "a", { B, 4 }), x(g, "b", { 4, 5 })) end)
case("matmul_ta_tb", function(g) return g.matmul(x(g, "a", { 4, 3 }), x(g, "b", { 5, 4 }), { ta = true, tb = true }) end)
case("matmul_batched", function(g) local B = g.dim("B"); return g.matmul(x(g, "a", { B, 3, 4 }), x(g, "b", { B, 4, 2 })) end)
case("matmul_broadcast_batch", function(g)
  local B, T = g.dim("B"), g.dim("T")
  return g.matmul(x(g, "a", { T, 1, 3, 4 }), x(g, "b", { 1, B, 2, 4 }), { tb = true })
end)
case("linear", function(g)
  local B = g.dim("B")
  return g.linear(x(g, "x", { B, 2, 4 }), g.param("w", { 3, 4 }), g.param("b", { 3 }))
end)

-- element-wise, with broadcasting
case("add_sub_broadcast", function(g)
  local B = g.dim("B")
  local a, b, c = x(g, "a", { B, 3, 4 }), x(g, "b", { 4 }), x(g, "c", { B, 1, 4 })
  return (a + b) - c
end)
case("mul_div", function(g)
  local B = g.dim("B")
  local a, b = x(g, "a", { B, 3 }), x(g, "b", { 3 })
  return a * b / (g.exp(b) + 0.5)
end)
case("scale_addc", function(g) local B = g.dim("B"); return (x(g, "a", { B, 3 }) * 2.5 + 1) / 4 - 3 end)
for _, f in ipairs({ "exp", "relu", "gelu", "sigmoid", "tanh", "square", "abs", "neg" }) do
  case(f, function(g) local B = g.dim("B"); return g[f](x(g, "a", { B, 5 })) end)
end
case("log_sqrt_rsqrt_recip", function(g)
  local B = g.dim("B")
  local p = g.exp(x(g, "a", { B, 5 })) + 0.5 -- positive
  return g.log(p) + g.sqrt(p) + g.rsqrt(p) + g.recip(p)
end)
case("clamp_min", function(g) local B = g.dim("B"); return g.clamp_min(x(g, "a", { B, 6 }), 0.1) end)

-- reductions
case("sum_mean_max", function(g)
  local B = g.dim("B")
  local a = x(g, "a", { B, 3, 4 })
  return g.sum(a, 2) + g.mean(a, -1) * g.max(a, 3) + g.mean(a, 1)
end)

-- softmax and logsumexp, plain and masked (a masked-out row must give zeros)
case("softmax", function(g) local B = g.dim("B"); return g.softmax(x(g, "a", { B, 5 }), -1) end)
case("softmax_masked", function(g)
  local B = g.dim("B")
  return g.softmax(x(g, "a", { B, 3, 5 }), -1, x(g, "m", { B, 1, 5 }, { role = "mask" }))
end)
case("logsumexp", function(g) local B = g.dim("B"); return g.logsumexp(x(g, "a", { B, 5 }), 1) end)
case("logsumexp_masked", function(g)
  local B = g.dim("B")
  return g.logsumexp(x(g, "a", { B, 5 }), -1, x(g, "m", { B, 5 }, { role = "mask" }))
end)

-- normalisation
case("layer_norm", function(g)
  local B = g.dim("B")
  return g.layer_norm(x(g, "a", { B, 2, 6 }), g.param("ln.weight", { 6 }), g.param("ln.bias", { 6 }))
end)
case("group_norm", function(g)
  local B = g.dim("B")
  return g.group_norm(x(g, "a", { B, 4, 3, 3 }), 2, g.param("gn.weight", { 4 }), g.param("gn.bias", { 4 }))
end)
case("l2norm", function(g) local B = g.dim("B"); return g.l2norm(x(g, "a", { B, 3, 4 }), -1) end)

-- convolution, pooling, upsampling
case("conv2d_s1p1", function(g)
  local B = g.dim("B")
  return g.conv2d(x(g, "x", { B, 2, 5, 5 }), g.param("w", { 3, 2, 3, 3 }), g.param("b", { 3 }), 1, 1)
end)
case("conv2d_s2p1", function(g)
  local B = g.dim("B")
  return g.conv2d(x(g, "x", { B, 2, 6, 6 }), g.param("w", { 3, 2, 3, 3 }), g.param("b", { 3 }), 2, 1)
end)
-- the edges of the padding: a kernel wider than the image, more padding than the kernel needs,
-- odd sizes, and a 1x1 kernel with stride 2
case("conv2d_k5s2p3_edges", function(g)
  local B = g.dim("B")
  return g.conv2d(x(g, "x", { B, 1, 3, 4 }), g.param("w", { 2, 1, 5, 5 }), g.param("b", { 2 }), 2, 3)
end)
case("conv2d_k1s2p0", function(g)
  local B = g.dim("B")
  return g.conv2d(x(g, "x", { B, 2, 5, 5 }), g.param("w", { 3, 2, 1, 1 }), nil, 2, 0)
end)
-- more images than conv2d's 16 lanes, of one input channel (the direct loops, no columns)
case("conv2d_s2p1_35_images", function(g)
  local B = g.dim("B")
  return g.conv2d(x(g, "x", { B, 1, 4, 4 }), g.param("w", { 3, 1, 3, 3 }), g.param("b", { 3 }), 2, 1)
end, { B = 35 })
-- input gradient columns too large for one block (72 x 49 x 49 elements): made for two tiles of
-- output rows (25 and 24), whose input rows overlap; 49 columns are not whole vectors, so the
-- input gradient goes through columns, not gemm_gathered
case("conv2d_row_tiles", function(g)
  local B = g.dim("B")
  return g.conv2d(x(g, "x", { B, 8, 49, 49 }), g.param("w", { 2, 8, 3, 3 }), g.param("b", { 2 }), 1, 1)
end)
-- output rows of 16: read in place (gemm_gathered), two rows at a time, the fifth alone; at
-- stride 2 from planes split by phase, and at stride 1
case("conv2d_gathered_s2_odd_rows", function(g)
  local B = g.dim("B")
  return g.conv2d(x(g, "x", { B, 2, 9, 32 }), g.param("w", { 3, 2, 3, 3 }), g.param("b", { 3 }), 2, 1)
end)
case("conv2d_gathered_s1", function(g)
  local B = g.dim("B")
  return g.conv2d(x(g, "x", { B, 2, 5, 16 }), g.param("w", { 3, 2, 3, 3 }), g.param("b", { 3 }), 1, 1)
end)
-- the im2col op (its gradient is col2im) and the col2im op (its gradient is im2col), at a stride
-- whose phases differ in length (7 bordered columns, stride 2)
case("im2col_k3s2p1", function(g)
  local B = g.dim("B")
  return g.im2col(x(g, "x", { B, 2, 4, 5 }), { kh = 3, kw = 3, stride = 2, pad = 1 })
end)
case("col2im_k3s2p1", function(g)
  local B = g.dim("B")
  return g.col2im(x(g, "c", { B, 18, 6 }), { B, 2, 4, 5 }, { kh = 3, kw = 3, stride = 2, pad = 1 })
end)
-- 66 input channels: the weight gradient in four channel chunks of 16 and 17 channels
case("conv2d_66_in_channels", function(g)
  local B = g.dim("B")
  return g.conv2d(x(g, "x", { B, 66, 2, 3 }), g.param("w", { 2, 66, 3, 3 }), nil, 1, 1)
end)
-- 64 output channels of one input channel
case("conv2d_64_out_channels", function(g)
  local B = g.dim("B")
  return g.conv2d(x(g, "x", { B, 1, 3, 3 }), g.param("w", { 64, 1, 3, 3 }), g.param("b", { 64 }), 1, 1)
end)
-- a 1x1 kernel of a single channel: the direct loops, with no border
case("conv2d_one_channel_k1", function(g)
  local B = g.dim("B")
  return g.conv2d(x(g, "x", { B, 1, 3, 4 }), g.param("w", { 2, 1, 1, 1 }), g.param("b", { 2 }), 1, 0)
end)
-- a 1x1 kernel with stride 1 and no padding: the image is its own columns (no im2col)
case("conv2d_k1s1p0", function(g)
  local B = g.dim("B")
  return g.conv2d(x(g, "x", { B, 3, 4, 5 }), g.param("w", { 2, 3, 1, 1 }), g.param("b", { 2 }), 1, 0)
end)
case("avg_pool_mean_over", function(g)
  local B = g.dim("B")
  local a = x(g, "a", { B, 2, 4, 4 })
  return g.avg_pool(a, 2) + g.mean_over(a, { 3, 4 })
end)
case("upsample2", function(g) local B = g.dim("B"); return g.upsample2(x(g, "a", { B, 2, 3, 3 })) end)

-- data movement
case("reshape_permute_transpose", function(g)
  local B = g.dim("B")
  local a = x(g, "a", { B, 3, 4 })
  return g.transpose(g.permute(g.reshape(a, { B, 2, 6 }), { 3, 1, 2 }), 1, 3)
end)
case("slice_pad", function(g)
  local B = g.dim("B")
  local a = x(g, "a", { B, 6 })
  return g.pad(g.slice(a, 2, 1, 3), 2, 2, 1) * 3 + g.slice(a, 2, 0, 6)
end)
case("concat", function(g)
  local B = g.dim("B")
  return g.concat({ x(g, "a", { B, 2, 3 }), x(g, "b", { B, 4, 3 }) }, 2)
end)

-- indices
case("embedding", function(g)
  local B = g.dim("B")
  return g.gather(g.param("emb", { 7, 4 }), x(g, "ids", { B, 5 }, { dtype = "int32", max = 7 }))
end)
case("scatter_add", function(g)
  local B = g.dim("B")
  return g.scatter_add(x(g, "v", { B, 4, 2 }), x(g, "ids", { B, 4 }, { dtype = "int32", max = 5 }), 5)
end)
case("cross_entropy", function(g)
  local B = g.dim("B")
  return g.cross_entropy(x(g, "logits", { B, 5 }), x(g, "t", { B }, { dtype = "int32", max = 5 }))
end)
case("cross_entropy_eye", function(g) -- CE2 of SPEC 6: targets on the diagonal, texts x images
  local B, T = g.dim("B"), g.dim("T")
  local X = x(g, "X", { T, B })
  local E = g.eye(T, B)
  local rows = g.logsumexp(X, 2) - g.sum(X * E, 2)
  local cols = g.logsumexp(X, 1) - g.sum(X * E, 1)
  return g.sum(rows * g.sum(E, 2), 1) + g.sum(cols, 2)
end)
case("bce_with_logits", function(g)
  local B = g.dim("B")
  return g.bce_with_logits(x(g, "z", { B, 6 }) * 3, x(g, "y", { B, 6 }, { role = "target" }))
end)
case("weighted_sum_masked", function(g)
  local B = g.dim("B")
  return g.weighted_sum(x(g, "v", { B, 5, 3 }), x(g, "w", { B, 5, 1 }), 2, x(g, "m", { B, 5, 1 }, { role = "mask" }))
end)
case("onehot", function(g)
  local B = g.dim("B")
  return x(g, "a", { B, 4 }) * g.onehot(x(g, "t", { B }, { dtype = "int32", max = 4 }), 4)
end)

return cases
