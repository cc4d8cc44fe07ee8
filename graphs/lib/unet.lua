-- SPEC 10 segmentation head: a U-Net decoder over the image encoder's feature maps F0..F3, and
-- its loss. Parameters are named seg.*; the encoder keeps its SPEC 8b image.* names.
local L = require("graphs.lib.layers")

local unet = {}

-- F: {[0] = [B, c0, S, S], [1] = [B, c1, S/2, S/2], [2] = [B, c2, S/4, S/4], [3] = [B, c3, S/8, S/8]}
-- widths: {[0] = c0, ..., [3] = c3} the channels of F; dec: {[0], [1], [2]} the decoder's widths.
-- Three stages up from F3: x = ReLU(GN(conv3x3(concat(upsample2(x), F_n)))) for n = 2, 1, 0,
-- then a 1x1 convolution to one logit channel. Returns the logits [B, 1, S, S].
function unet.decoder(g, cfg, F, widths, dec)
  local x, cx = F[3], widths[3]
  for n = 2, 0, -1 do
    local p = "seg.dec" .. n
    local cat = g.concat({ g.upsample2(x), F[n] }, 2)      -- [B, cx + c_n, H_n, W_n]
    local y = L.conv3x3(g, p .. ".conv", cat, cx + widths[n], dec[n], 1)
    x = g.relu(L.group_norm(g, p .. ".gn", y, dec[n], cfg.groups))
    cx = dec[n]
  end
  -- 1x1 convolution, PyTorch's Conv2d(cx, 1, 1) layout and default initialisation
  local W = g.param("seg.head.weight", { 1, cx, 1, 1 })
  local b = g.param("seg.head.bias", { 1 }, { init = { "uniform", 1 / math.sqrt(cx) }, decay = false })
  return g.conv2d(x, W, b, 1, 0)
end

-- mean BCE-with-logits over every pixel + soft Dice per image, averaged over the batch:
--   dice_loss_i = 1 - (2 sum(p t) + 1) / (sum p + sum t + 1),  p = sigmoid(logits)
-- The +1 keeps an empty target defined: there the loss pushes every p towards 0.
function unet.loss(g, logits, mask)
  local B, S = logits.shape[1], logits.shape[3]
  local bce = g.mean_over(g.bce_with_logits(logits, mask), { 1, 2, 3, 4 })   -- [1, 1, 1, 1]
  local p = g.reshape(g.sigmoid(logits), { B, S * S })
  local t = g.reshape(mask, { B, S * S })
  local inter = g.sum(p * t, 2)                                             -- [B, 1]
  local dice = (inter * 2 + 1) / (g.sum(p, 2) + g.sum(t, 2) + 1)            -- [B, 1]
  local dice_loss = 1 - g.mean(dice, 1)                                     -- [1, 1]
  return g.reshape(bce, {}) + g.reshape(dice_loss, {})
end

return unet
