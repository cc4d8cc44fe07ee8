-- Graphs for the kernel tests (tests/c/kernels/test_kernels.c): each entry is a few ops with
-- inputs and outputs and no loss. mk/kernels.mk compiles this file into build/kernels/ops_<entry>.c
-- (float), and the test compares every output with plain C loops. Sizes are odd on purpose
-- (no multiple of a vector width) and B is a run-time size.
local graphs = {}

-- batched products: broadcast batch dimensions, transposed operands, a shared right matrix
graphs.matmul = function(g)
  local B = g.dim("B")
  local a = g.input("a", { B, 1, 5, 8 })
  local b = g.input("b", { 1, 3, 6, 8 })
  g.output("bcast", g.matmul(a, b, { tb = true }))                 -- [B,3,5,6] = a . b^T
  local x = g.input("x", { B, 7, 8 })
  local w = g.input("w", { 8, 6 })
  g.output("shared", g.matmul(x, w))                               -- [B,7,6]
  local c = g.input("c", { 4, 5 })
  local d = g.input("d", { 4, 3 })
  g.output("ta", g.matmul(c, d, { ta = true }))                    -- [5,3] = c^T . d
end

-- a Linear layer with its parameters (PyTorch layout W [out, in]) and a ReLU
graphs.linear = function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 3, 8 })
  local W = g.param("fc.weight", { 6, 8 })
  local b = g.param("fc.bias", { 6 })
  g.output("y", g.relu(g.linear(x, W, b)))                         -- [B,3,6]
end

-- softmax along the last axis, plain and with a key mask (a fully masked row gives zeros),
-- and the masked log-sum-exp
graphs.softmax = function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 4, 7 })
  local m = g.input("m", { B, 1, 7 }, { role = "mask" })
  g.output("plain", g.softmax(x, -1))
  g.output("masked", g.softmax(x, -1, m))
  g.output("lse", g.logsumexp(x, -1, m))                           -- [B,4,1]
end

graphs.layer_norm = function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 5, 16 })
  g.output("y", g.layer_norm(x, g.input("gamma", { 16 }), g.input("beta", { 16 })))
end

graphs.group_norm = function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 6, 4, 5 })
  g.output("y", g.group_norm(x, 3, g.input("gamma", { 6 }), g.input("beta", { 6 })))
end

-- 3x3 convolution, stride 2, padding 1, with bias: [B,3,9,9] -> [B,4,5,5] (im2col and GEMM);
-- and of a single channel, stride 1, padding 1: [B,1,9,9] -> [B,4,9,9] (the direct loops)
graphs.conv2d = function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 3, 9, 9 })
  g.output("y", g.conv2d(x, g.input("w", { 4, 3, 3, 3 }), g.input("b", { 4 }), 2, 1))
  g.output("y1", g.conv2d(g.input("x1", { B, 1, 9, 9 }), g.input("w1", { 4, 1, 3, 3 }), g.input("b1", { 4 }), 1, 1))
end

-- convolutions and their two gradients, at stride 1 and 2, padding 1, w [12,C,3,3], of three
-- images: x [B,5,11,11] (columns: odd sizes; the products end in partial blocks: 12 output
-- channels, 45 rows of columns, 121 and 36 pixels), xa [B,3,16,16] (read in place, two output rows
-- of 16 at a time, an odd count of rows at stride 2: 8) and xb [B,3,32,32] (read in place, 32 and
-- 16 pixels a row). Outputs y<image><stride>, dx<image><stride>, dw<image><stride>.
graphs.conv2d_grads = function(g)
  local B = g.dim("B")
  for _, img in ipairs({ { "", 5, 11 }, { "a", 3, 16 }, { "b", 3, 32 } }) do
    local tag, C, side = img[1], img[2], img[3]
    local x = g.input("x" .. tag, { B, C, side, side })
    local w = g.input("w" .. tag, { 12, C, 3, 3 })
    for _, stride in ipairs({ 1, 2 }) do
      local a = { kh = 3, kw = 3, stride = stride, pad = 1 }
      local out = math.floor((side + 2 - 3) / stride) + 1
      local dy = g.input("dy" .. tag .. stride, { B, 12, out, out })
      g.output("y" .. tag .. stride, g.conv2d(x, w, nil, stride, 1))
      g.output("dx" .. tag .. stride, g.conv2d_input_grad(dy, w, a, x.shape))
      g.output("dw" .. tag .. stride, g.conv2d_weight_grad(dy, x, a, w.shape))
    end
  end
end

-- embedding lookup
graphs.gather = function(g)
  local B = g.dim("B")
  local tab = g.input("table", { 10, 5 })
  local ids = g.input("ids", { B, 6 }, { dtype = "int32", max = 10 })
  g.output("y", g.gather(tab, ids))                                -- [B,6,5]
end

graphs.permute = function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 3, 4, 5 })
  g.output("y", g.permute(x, { 3, 1, 4, 2 }))                      -- [4,B,5,3]
  g.output("t", g.transpose(x, 2, 4))                              -- [B,5,4,3]
end

-- y[:, 0:2] = x[:, 1:3], y[:, 2:4] = z, y[:, 4:5] = x[:, 5:6]; and zero padding
graphs.slice_concat = function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 6, 4 })
  local z = g.input("z", { B, 2, 4 })
  g.output("y", g.concat({ g.slice(x, 2, 1, 2), z, g.slice(x, 2, 5, 1) }, 2)) -- [B,5,4]
  g.output("pad", g.pad(z, 3, 1, 2))                              -- [B,2,7]
end

graphs.reduce = function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 5, 7 })
  g.output("sum", g.sum(x, 2))                                     -- [B,1,7]
  g.output("max", g.max(x, 3))                                     -- [B,5,1]
  g.output("mean_b", g.mean(x, 1))                                 -- [1,5,7]: divides by run-time B
  g.output("total", g.sum_all(x))                                  -- []
end

-- element-wise maps with broadcasting; GELU in its tanh form
graphs.elementwise = function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 33 })
  local r = g.input("r", { 33 })
  local c = g.input("c", { B, 1 })
  g.output("gelu", g.gelu(x))
  g.output("mix", g.sigmoid(x) * g.tanh(r) + c / (g.exp(r) + 1))
  g.output("l2", g.l2norm(x, -1))
end

graphs.cross_entropy = function(g)
  local B = g.dim("B")
  local logits = g.input("logits", { B, 6 })
  local t = g.input("t", { B }, { dtype = "int32", max = 6 })
  g.output("ce", g.cross_entropy(logits, t))                       -- [B]
end

return { graphs = graphs }
