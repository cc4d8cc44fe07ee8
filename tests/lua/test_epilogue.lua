-- GEMM epilogues (compiler/passes/epilogue.lua): what is folded into a matrix product's kernel,
-- what must not be, and that values and gradients do not change.
local gradcheck = require("compiler.gradcheck")
local T = {}

local function kernels(g)
  local k = {}
  for _, n in ipairs(g.schedule) do
    if n.op ~= "input" and n.op ~= "param" and n.op ~= "reshape" then k[#k + 1] = n end
  end
  return k
end

local function epilogues(g)
  local e = {}
  for _, n in ipairs(g.schedule) do
    if n.op == "matmul" and n.attrs.epilogue then e[#e + 1] = n end
  end
  return e
end

-- the loss of the plain form and of the optimised one, in double
local function same_loss(t, build, name, dims)
  local plain, fast = t.compile(build, name .. "_plain"), t.compile_optimized(build, name .. "_fast")
  local opts = { dims = dims, loss_only = true, workdir = t.tmpdir() }
  local l1, l2 = gradcheck.run(plain, t.root, opts), gradcheck.run(fast, t.root, opts)
  t.ok(math.abs(l1 - l2) <= 1e-12 * math.max(1, math.abs(l1)), string.format("%s: %.17g vs %.17g", name, l1, l2))
  return fast
end

function T.bias_and_activation_join_the_product(t)
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x, w, b = g.input("x", { B, 8 }), g.param("w", { 8, 5 }), g.param("b", { 5 })
    g.output("y", g.relu(g.matmul(x, w) + b))
  end, "ep_linear")
  local k = kernels(g)
  t.eq(#k, 1, "one kernel")
  t.eq(k[1].op, "matmul")
  t.eq(k[1].attrs.epilogue.name, "relu_add")
  t.eq(#k[1].inputs, 3, "x, w and the bias")
end

function T.a_product_the_backward_pass_reads_stays(t)
  -- GELU's derivative needs the pre-activation: the product has two users and keeps its buffer;
  -- the bias, read by nobody else, still joins it
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x, w = g.input("x", { B, 8 }), g.param("w", { 8, 5 })
    local h = g.matmul(x, w)
    g.loss(g.sum_all(g.gelu(h)))
  end, "ep_gelu")
  for _, n in ipairs(epilogues(g)) do
    t.ok(n.attrs.epilogue.name ~= "gelu", "GELU folded although its input is read again")
  end
  local plain = 0
  for _, n in ipairs(g.schedule) do if n.op == "matmul" and not n.attrs.epilogue and n.phase == "forward" then plain = plain + 1 end end
  t.eq(plain, 1, "the forward product stays a kernel of its own")
end

function T.reductions_and_broadcasts_are_not_epilogues(t)
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x, w = g.input("x", { B, 8 }), g.param("w", { 8, 5 })
    local r = g.input("r", { 3, B, 5 })
    g.output("s", g.logsumexp(g.matmul(x, w), -1))   -- reads the whole row
    g.output("z", g.matmul(x, w) * 2 + r)            -- [3,B,5]: reads each product element 3 times
  end, "ep_not")
  t.eq(#epilogues(g), 0, "nothing folded")
end

function T.outputs_are_not_folded(t)
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x, w = g.input("x", { B, 8 }), g.param("w", { 8, 5 })
    local h = g.matmul(x, w)
    g.output("h", h)
    g.output("y", g.relu(h))
  end, "ep_out")
  t.eq(#epilogues(g), 0)
end

function T.values_do_not_change(t)
  -- batched products with broadcast operands, a bias and a residual of the full shape,
  -- transposed operands, and (N = 2048) a product long enough to run in several row panels
  local g = same_loss(t, function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 4, 6 })
    local w, b = g.param("w", { 6, 7 }), g.param("b", { 7 })
    local res = g.input("res", { B, 4, 7 })
    local y = g.tanh(g.matmul(x, w) + b) + res                         -- batched, w broadcast
    local v = g.input("v", { 3, 1, 7, 6 })
    local z = g.matmul(g.reshape(y, { 1, B, 4, 7 }), v) * 0.5          -- [3,B,4,6]
    local q = g.input("q", { 5, B })
    local u = g.param("u", { 5, 2048 })
    local big = g.sigmoid(g.matmul(q, u, { ta = true }) - 0.25)        -- [B,2048], op(A) = q^T
    local w2, res2 = g.param("w2", { 6, 7 }), g.input("res2", { B, 4, 7 })
    local y2 = g.matmul(x, w2) + res2                                   -- flattened to [4*B,7]: through a reshape
    local z2 = g.matmul(y2, g.param("v2", { 7, 3 }))
    g.loss(g.sum_all(z * z) + g.sum_all(big) + g.sum_all(z2 * z2))
  end, "ep_values", { B = 150 })
  local names = {}
  for _, n in ipairs(epilogues(g)) do names[n.attrs.epilogue.name] = n end
  for _, want in ipairs({ "tanh_add", "scale", "sigmoid_addc", "add" }) do
    t.ok(names[want] ~= nil, "no epilogue " .. want)
  end
  t.ok(names.add.attrs.product_shape ~= nil, "the residual is read through the reshape")
  local ok = gradcheck.run(g, t.root, { dims = { B = 3 }, workdir = t.tmpdir(), print = function() end })
  t.ok(ok, "gradients of the optimised form")
end

-- a ReLU after a GroupNorm becomes the GroupNorm kernel's last step: the ReLU's mask reads its
-- output, so the GroupNorm's own output has no other reader; loss and gradients are unchanged
function T.relu_joins_the_group_norm_before_it(t)
  local build = function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 4, 3, 3 })
    local h = g.group_norm(x, 2, g.param("gamma", { 4 }), g.param("beta", { 4 }))
    -- a convolution after it, as in the image encoder: the ReLU's gradient is a lone mask of
    -- the convolution's input gradient
    local y = g.conv2d(g.relu(h), g.param("w", { 2, 4, 3, 3 }), nil, 1, 1)
    g.loss(g.sum_all(y * g.input("r", { B, 2, 3, 3 }, { grad = false })))
  end
  local g = same_loss(t, build, "ep_gn_relu", { B = 3 })
  local folded, relus, masks, masked = 0, 0, 0, 0
  for _, n in ipairs(g.schedule) do
    if n.op == "group_norm" and n.attrs.relu then folded = folded + 1 end
    if n.op == "map" and n.attrs.fn == "relu" then relus = relus + 1 end
    if n.op == "fused" and n.attrs.name == "mul_step" then masks = masks + 1 end
    if (n.op == "group_norm_sums" or n.op == "group_norm_grad_x") and n.attrs.relu then masked = masked + 1 end
  end
  t.eq(folded, 1, "one GroupNorm with its ReLU")
  t.eq(relus, 0, "no ReLU kernel of its own")
  -- and backward: the ReLU's mask is applied inside the GroupNorm's two backward kernels
  t.eq(masks, 0, "no kernel of its own for the ReLU's gradient")
  t.eq(masked, 2, "the GroupNorm's sums and input gradient mask dy themselves")
  local fast = t.compile_optimized(build, "ep_gn_relu_check")
  t.ok(gradcheck.run(fast, t.root, { dims = { B = 3 }, samples = 20, tol = 1e-6, workdir = t.tmpdir(), quiet = true }))
end

-- a GroupNorm that a ReLU and something else read keeps its output and its own ReLU, and then its
-- backward kernels read the masked gradient the ReLU's gradient kernel wrote
function T.relu_gradient_of_an_unfolded_group_norm_stays(t)
  local build = function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 4, 3, 3 })
    local h = g.group_norm(x, 2, g.param("gamma", { 4 }), g.param("beta", { 4 }))
    local r = g.input("r", { B, 4, 3, 3 }, { grad = false })
    g.loss(g.sum_all(g.relu(h) * r) + g.sum_all(h * h))
  end
  local g = same_loss(t, build, "ep_gn_relu_unfolded", { B = 3 })
  for _, n in ipairs(g.schedule) do
    t.ok(not n.attrs.relu, "a ReLU folded into %s although the GroupNorm's output is read twice", n.op)
  end
  local fast = t.compile_optimized(build, "ep_gn_relu_unfolded_check")
  t.ok(gradcheck.run(fast, t.root, { dims = { B = 3 }, samples = 20, tol = 1e-6, workdir = t.tmpdir(), quiet = true }))
end

-- a GroupNorm whose output is wanted as well keeps it: the ReLU stays a kernel of its own
function T.relu_of_a_group_norm_read_twice_stays(t)
  local g = t.compile_optimized(function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 4, 3, 3 })
    local h = g.group_norm(x, 2, g.param("gamma", { 4 }), g.param("beta", { 4 }))
    g.output("h", h)
    g.output("y", g.relu(h))
  end, "ep_gn_twice")
  local relus = 0
  for _, n in ipairs(g.schedule) do
    t.ok(not (n.op == "group_norm" and n.attrs.relu), "ReLU folded into a GroupNorm read twice")
    if n.op == "map" and n.attrs.fn == "relu" then relus = relus + 1 end
  end
  t.eq(relus, 1, "the ReLU kernel stays")
end

return T
