-- Sums of batched products (compiler/passes/accumulate.lua): what is folded into the product's
-- GEMMs, what must not be, and that gradients do not change.
local gradcheck = require("compiler.gradcheck")
local T = {}

local function ops_of(g)
  local k = {}
  for _, n in ipairs(g.schedule) do
    if n.op ~= "input" and n.op ~= "param" and n.op ~= "reshape" then k[#k + 1] = n end
  end
  return k
end

-- y = a[T,1,3,4] . b[1,B,4,2]: the gradient of each operand sums the per-pair products over the
-- axis it is broadcast along; both sums become accumulating GEMMs, and no reduce reads a product
local function broadcast_pair(g)
  local B, Tn = g.dim("B"), g.dim("T")
  local a = g.input("a", { Tn, 1, 3, 4 }, { grad = true })
  local b = g.input("b", { 1, B, 4, 2 }, { grad = true })
  g.loss(g.sum_all(g.matmul(a, b) * g.input("r", { Tn, B, 3, 2 })))
end

function T.sums_of_broadcast_products_accumulate(t)
  local g = t.compile_optimized(broadcast_pair, "acc_fold")
  local summed, reduces = 0, 0
  for _, n in ipairs(ops_of(g)) do
    if n.op == "matmul" and n.attrs.sum_axis then summed = summed + 1 end
    if n.op == "reduce" and n.inputs[1].op == "matmul" then reduces = reduces + 1 end
  end
  t.eq(summed, 2, "both operand gradients accumulate")
  t.eq(reduces, 0, "no reduce reads a product")
  local ok = gradcheck.run(g, t.root, { dims = { B = 3, T = 5 }, samples = 40, tol = 1e-6, workdir = t.tmpdir(), print = function() end })
  t.ok(ok, "gradients of the accumulated form")
end

-- a product that something else reads as well stays, and so does its sum
function T.a_product_read_twice_is_not_folded(t)
  local g = t.compile_optimized(function(g)
    local B, Tn = g.dim("B"), g.dim("T")
    local p = g.matmul(g.input("a", { Tn, 1, 3, 4 }), g.input("b", { 1, B, 4, 2 }))
    g.output("s", g.sum(p, 1))
    g.output("p", p)
  end, "acc_keep")
  for _, n in ipairs(ops_of(g)) do t.ok(not n.attrs.sum_axis, "nothing accumulates: the product is an output") end
end

return T
