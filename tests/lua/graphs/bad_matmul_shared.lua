-- A batched operand times a shared 2-D matrix whose rows do not match its columns.
return function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 3, 4 })
  local w = g.param("w", { 5, 6 })
  g.output("y", g.matmul(x, w)) -- BAD
end
