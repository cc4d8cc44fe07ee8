-- "T" is used as a dimension without g.dim("T").
return function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 4 })
  local m = g.input("m", { "T", 4 }) -- BAD
  g.output("y", x + m)
end
