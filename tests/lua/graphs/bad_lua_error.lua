-- A plain Lua bug inside a block function (indexing a nil configuration table).
local function block(g, cfg, x)
  local width = cfg.block.width -- BAD
  return x * width
end

return function(g, cfg)
  local B = g.dim("B")
  local x = g.input("x", { B, 4 })
  g.output("y", block(g, cfg, x)) -- CALLER
end
