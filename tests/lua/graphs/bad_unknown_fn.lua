-- An element-wise function that does not exist.
return function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 4 })
  g.output("y", g.map("frobnicate", { x })) -- BAD
end
