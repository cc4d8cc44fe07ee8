-- Adding a [B,3] tensor to a [4] vector: trailing dimensions 3 and 4 cannot broadcast.
return function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 3 })
  local b = g.param("b", { 4 })
  local y = x + b -- BAD
  g.output("y", y)
end
