-- matmul called with its second operand missing.
return function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 4 })
  g.output("y", g.matmul(x)) -- BAD
end
