-- SPEC 1: a small ResNet with GroupNorm. images [B, 1, S, S] in [0, 1].
-- Returns the four feature maps (F0..F3), the regions V [B, R, d] and the global v_g [B, d].
local L = require("graphs.lib.layers")

local function conv_gn_relu(g, cfg, prefix, gn_prefix, x, cin, cout, stride)
  local y = L.conv3x3(g, prefix, x, cin, cout, stride)
  return g.relu(L.group_norm(g, gn_prefix, y, cout, cfg.groups))
end

-- ResBlock(C)(x) = ReLU(x + GN(conv3x3(ReLU(GN(conv3x3(x))))))
local function res_block(g, cfg, prefix, x, C)
  local h = conv_gn_relu(g, cfg, prefix .. ".conv1", prefix .. ".gn1", x, C, C, 1)
  h = L.group_norm(g, prefix .. ".gn2", L.conv3x3(g, prefix .. ".conv2", h, C, C, 1), C, cfg.groups)
  return g.relu(x + h)
end

return function(g, cfg, images)
  local B = images.shape[1]
  local x = (images - 0.5) / 0.25
  local widths = { cfg.stem, cfg.c1, cfg.c2, cfg.c3 }
  local F = {}
  F[0] = conv_gn_relu(g, cfg, "image.stem", "image.stem_gn", x, 1, cfg.stem, 1)
  local h = F[0]
  for n = 1, 3 do
    local p = "image.stage" .. n
    h = conv_gn_relu(g, cfg, p .. ".down", p .. ".gn", h, widths[n], widths[n + 1], 2)
    h = res_block(g, cfg, p .. ".res", h, widths[n + 1])
    F[n] = h
  end
  -- regions: position j = 8y + x of the final map (SPEC 8b), channels last
  local side = cfg.image / 8
  local R = side * side
  local regions = g.permute(g.reshape(F[3], { B, cfg.c3, R }), { 1, 3, 2 }) -- [B, R, c3]
  local V = L.linear(g, "image.region_proj", regions, cfg.c3, cfg.width)     -- [B, R, d]
  local pooled = g.mean(regions, 2, false)                                   -- [B, c3]
  local vg = L.linear(g, "image.global_proj", pooled, cfg.c3, cfg.width)      -- [B, d]
  return { F = F, V = V, vg = vg, R = R }
end
