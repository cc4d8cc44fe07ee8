-- SPEC 10 segmentation: a U-Net decoder (graphs/lib/unet.lua) on the RECLF image encoder's
-- feature maps F0..F3, trained with BCE + soft Dice against the union mask of a sample.
-- The encoder is graphs/lib/image_encoder.lua itself, so its parameters carry the SPEC 8b
-- image.* names and a RECLF checkpoint's encoder loads into these graphs by name
-- (runtime/seg_task.c). Entries:
--   seg           training graph, encoder frozen: its feature maps are detached, so backward
--                 stops at the decoder and costs nothing in the encoder (image.* gradients are 0)
--   seg.finetune  training graph with gradients through the encoder too
--   seg.predict   forward only: the probability map sigmoid(logits) [B, 1, S, S]
local image_encoder = require("graphs.lib.image_encoder")
local unet = require("graphs.lib.unet")

-- The encoder's sizes must equal graphs/lib/model.lua's (a checkpoint's shapes are checked when it
-- loads). dec0..dec2: the decoder's widths at F0..F2's resolutions (those of the skips).
-- detach_frozen = false keeps the frozen entry differentiable into the encoder (see tiny).
local defaults = {
  image = 64, width = 128, stem = 32, c1 = 32, c2 = 64, c3 = 128, groups = 8,
  dec0 = 32, dec1 = 32, dec2 = 64, detach_frozen = true,
}

-- `bin/reclfc --preset tiny` (make gradcheck). The check moves encoder weights by finite
-- differences, which a detach hides from the analytic gradient by design (it would report 0
-- against a non-zero difference), so at this preset the frozen entry is built without the cut:
-- the decoder's gradients do not depend on it (a detach only stops what flows into the
-- encoder), and tests/c/test_seg.c checks at full size that the detached entry gives exactly
-- zero image.* gradients and the same decoder gradients as seg.finetune.
local PRESETS = {
  tiny = { image = 16, width = 16, stem = 4, c1 = 4, c2 = 8, c3 = 16, groups = 2,
           dec0 = 4, dec1 = 4, dec2 = 8, detach_frozen = false },
}

local function inputs(g, cfg, with_mask)
  local B = g.dim("B")
  local images = g.input("images", { B, 1, cfg.image, cfg.image }, { grad = false })
  local mask = with_mask and g.input("mask", { B, 1, cfg.image, cfg.image }, { role = "target", grad = false })
  return images, mask
end

-- logits [B, 1, S, S] of the decoder on the encoder's maps (detached when frozen)
local function logits(g, cfg, images, frozen)
  local F = image_encoder(g, cfg, images).F
  if frozen then
    for n = 0, 3 do F[n] = g.detach(F[n]) end
  end
  local widths = { [0] = cfg.stem, cfg.c1, cfg.c2, cfg.c3 }
  return unet.decoder(g, cfg, F, widths, { [0] = cfg.dec0, cfg.dec1, cfg.dec2 })
end

local function trainer(frozen)
  return function(g, cfg)
    local images, mask = inputs(g, cfg, true)
    g.loss(unet.loss(g, logits(g, cfg, images, frozen and cfg.detach_frozen), mask))
  end
end

local function predict(g, cfg)
  local images = inputs(g, cfg, false)
  g.output("prob", g.sigmoid(logits(g, cfg, images, true)))
end

return { defaults = defaults, presets = PRESETS,
  graphs = { main = trainer(true), finetune = trainer(false), predict = predict } }
