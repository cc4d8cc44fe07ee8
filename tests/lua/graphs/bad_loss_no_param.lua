-- A loss computed from inputs only (and a parameter seen only through detach): nothing to train.
return function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 4 }, { grad = false })
  local w = g.param("w", { 4 })
  g.loss(g.sum_all(x * g.detach(w))) -- BAD
end
