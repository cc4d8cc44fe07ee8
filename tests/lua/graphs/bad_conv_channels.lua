-- A 3-channel image through a kernel built for 4 input channels.
return function(g)
  local B = g.dim("B")
  local x = g.input("x", { B, 3, 8, 8 })
  local w = g.param("w", { 8, 4, 3, 3 })
  g.output("y", g.conv2d(x, w, nil, 1, 1)) -- BAD
end
