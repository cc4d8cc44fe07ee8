-- A small, correct single-entry training graph: conv -> group norm -> ReLU -> pooled linear
-- classifier with cross-entropy. Used by the DOT, determinism and planner tests.
return function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 2, 6, 6 }, { grad = false })
  local labels = g.input("labels", { B }, { dtype = "int32", max = 3 })
  local w = g.param("conv.weight", { 4, 2, 3, 3 })
  local h = g.conv2d(x, w, g.param("conv.bias", { 4 }), 2, 1)         -- CONV
  h = g.relu(g.group_norm(h, 2, g.param("gn.weight", { 4 }, { init = "ones" }),
    g.param("gn.bias", { 4 }, { init = "zeros" })))
  local pooled = g.reshape(g.mean_over(h, { 3, 4 }), { B, 4 })
  local logits = g.linear(pooled, g.param("fc.weight", { 3, 4 }), g.param("fc.bias", { 3 }))
  g.output("logits", logits)
  g.loss(g.mean(g.cross_entropy(logits, labels), 1, false))           -- LOSS
end
