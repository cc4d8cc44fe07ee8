-- `add` given one argument instead of two.
return function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 4 })
  g.output("y", g.map("add", { x })) -- BAD
end
