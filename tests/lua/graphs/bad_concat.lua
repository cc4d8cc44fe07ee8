-- Concatenating along axis 2 tensors whose last dimensions differ (4 and 5).
return function(g)
  local B = g.dim("B")
  local a = g.input("a", { B, 2, 4 })
  local b = g.input("b", { B, 3, 5 })
  g.output("y", g.concat({ a, b }, 2)) -- BAD
end
