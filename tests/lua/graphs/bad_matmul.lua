-- A matrix product whose inner dimensions differ (4 columns against 5 rows).
return function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 3, 4 })
  local w = g.input("w", { B, 5, 6 })
  g.output("y", g.matmul(x, w)) -- BAD
end
