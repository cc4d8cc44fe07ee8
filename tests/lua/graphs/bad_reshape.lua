-- Reshaping 6*B elements into 4*B.
return function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 2, 3 })
  g.output("y", g.reshape(x, { B, 4 })) -- BAD
end
