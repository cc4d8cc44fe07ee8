-- The same parameter name declared by two layers.
return function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 4 })
  local w1 = g.param("layer.weight", { 4, 4 }) -- FIRST
  local w2 = g.param("layer.weight", { 4, 4 }) -- BAD
  g.output("y", g.linear(g.linear(x, w1), w2))
end
