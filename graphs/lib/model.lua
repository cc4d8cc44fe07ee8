-- RECLF-small and its variants (SPEC 7), composed from the blocks of graphs/lib.
-- A model file says `return require("graphs.lib.model")("reclf")` (or another variant) and gets
-- four entry points: the training graph (loss) and three evaluation graphs (image features,
-- text features, pairwise scores), all sharing the SPEC 8b parameter names.
local image_encoder = require("graphs.lib.image_encoder")
local text_encoder = require("graphs.lib.text_encoder")
local matching = require("graphs.lib.matching")
local srm = require("graphs.lib.srm")
local irm = require("graphs.lib.irm")
local losses = require("graphs.lib.losses")

-- SPEC defaults; `bin/reclfc --set key=value` overrides any of them
local defaults = {
  image = 64, seq_len = 40, width = 128, heads = 4, ffn = 512, blocks = 2,
  stem = 32, c1 = 32, c2 = 64, c3 = 128, groups = 8, vocab = 1024,
  tau1 = 0.1, tau_g = 0.07, tau_l = 0.1, lambda = 1, tau2 = 5, gloria_scale = 10,
}

-- `bin/reclfc --preset tiny`: the whole-model gradient checks run at this size
local PRESETS = {
  tiny = { image = 16, seq_len = 8, width = 16, heads = 2, ffn = 32, stem = 4, c1 = 4, c2 = 8, c3 = 16,
           groups = 2, vocab = 11 },
}

-- the local term of each variant: local logits Lm [T, B] (nil for convirt), plus what explain draws
local LOCAL = {}
LOCAL.reclf = function(g, cfg, t, v, wmask, opt)
  local mt = matching(g, cfg, t.W, v.V)
  -- opt.srm: true for one SRM layer (SPEC 4), or a number of stacked layers ("srm", "srm2", ...)
  local mp = mt.m
  local layers = opt.srm == true and 1 or (opt.srm or 0)
  for l = 1, layers do mp = srm(g, cfg, mp, t.W, wmask, l == 1 and "srm" or ("srm" .. l)) end
  local s = g.sum(mp, -1)                                                -- s_k = sum m'_k
  local T, B, K = mp.shape[1], mp.shape[2], mp.shape[3]
  local S, beta
  if opt.irm then
    S, beta = irm(g, cfg, t.tg, mp, s, wmask)
  else -- beta_k = 1 / number of valid words
    local wm = g.reshape(wmask, { T, 1, K, 1 })
    beta = wm / g.clamp_min(g.sum(wm, 3), 1)
    S = g.reshape(g.sum(beta * s, 3), { T, B })
  end
  return S / cfg.tau_l, mt.a, beta
end
LOCAL.gloria = function(g, cfg, t, v, wmask)
  local mt = matching(g, cfg, t.W, v.V)
  local T, B, K = mt.cos.shape[1], mt.cos.shape[2], mt.cos.shape[3]
  -- S = (1/tau2) log sum_valid exp(tau2 cos_k)
  local S = g.logsumexp(mt.cos * cfg.tau2, 3, g.reshape(wmask, { T, 1, K, 1 })) / cfg.tau2
  return g.reshape(S, { T, B }) * cfg.gloria_scale, mt.a, nil
end

local VARIANTS = {
  reclf = { kind = "reclf", srm = true, irm = true },
  ["reclf-nosrm"] = { kind = "reclf", srm = false, irm = true },
  ["reclf-noirm"] = { kind = "reclf", srm = true, irm = false },
  gloria = { kind = "gloria" },
  convirt = { kind = "none" },
}

local function standard_inputs(g, cfg)
  local B, T = g.dim("B"), g.dim("T")
  local K = cfg.seq_len - 1
  return {
    images = g.input("images", { B, 1, cfg.image, cfg.image }, { grad = false }),
    tokens = g.input("tokens", { T, cfg.seq_len }, { dtype = "int32", max = cfg.vocab }),
    attn_mask = g.input("attn_mask", { T, cfg.seq_len }, { role = "mask" }),
    word_mask = g.input("word_mask", { T, K }, { role = "mask" }),
  }
end

-- variant: a SPEC 7 name, or a table such as {kind = "reclf", srm = 2, irm = true} for a new one
return function(variant)
  local opt = type(variant) == "table" and variant or VARIANTS[variant]
  if not opt then error("unknown RECLF variant '" .. tostring(variant) .. "'") end
  local local_term = LOCAL[opt.kind]

  local function train(g, cfg)
    local x = standard_inputs(g, cfg)
    local v = image_encoder(g, cfg, x.images)
    local t = text_encoder(g, cfg, x.tokens, x.attn_mask)
    local loss = losses.ce2n(g, losses.global_logits(g, cfg, t.tg, v.vg))
    if local_term then
      local Lm = local_term(g, cfg, t, v, x.word_mask, opt)
      loss = loss + losses.ce2n(g, Lm) * cfg.lambda
    end
    g.loss(loss)
  end

  -- image features for every downstream task: v_g, the regions and the four feature maps
  local function image(g, cfg)
    local B = g.dim("B")
    local v = image_encoder(g, cfg, g.input("images", { B, 1, cfg.image, cfg.image }, { grad = false }))
    g.output("vg", v.vg)
    g.output("V", v.V)
    for n = 0, 3 do g.output("F" .. n, v.F[n]) end
  end

  local function text(g, cfg)
    local T = g.dim("T")
    local tokens = g.input("tokens", { T, cfg.seq_len }, { dtype = "int32", max = cfg.vocab })
    local t = text_encoder(g, cfg, tokens, g.input("attn_mask", { T, cfg.seq_len }, { role = "mask" }))
    g.output("tg", t.tg)
    g.output("W", t.W)
  end

  -- the encoders' outputs as inputs: texts (tg, W, word mask) and images (vg, V)
  local function feature_inputs(g, cfg)
    local B, T = g.dim("B"), g.dim("T")
    local d, K = cfg.width, cfg.seq_len - 1
    local R = (cfg.image / 8) ^ 2
    local t = { tg = g.input("tg", { T, d }), W = g.input("W", { T, K, d }) }
    local v = { vg = g.input("vg", { B, d }), V = g.input("V", { B, R, d }) }
    return t, v, g.input("word_mask", { T, K }, { role = "mask" })
  end

  -- texts x images scores from features: global logits, local logits, attention and importance
  local function score(g, cfg)
    local t, v, wmask = feature_inputs(g, cfg)
    g.output("G", losses.global_logits(g, cfg, t.tg, v.vg))
    if local_term then
      local Lm, a, beta = local_term(g, cfg, t, v, wmask, opt)
      g.output("Lm", Lm)
      g.output("attention", a)
      if beta then g.output("beta", beta) end
    end
  end

  -- Data-parallel training with a gathered global batch (bin/reclf train --gather under MPI)
  -- splits the step in three: each rank encodes its shard, the loss runs on the gathered
  -- features, and each rank back-propagates its shard's feature gradients through its encoders.
  -- features_loss: the loss of train() from features (their gradients are input gradients)
  local function features_loss(g, cfg)
    local t, v, wmask = feature_inputs(g, cfg)
    local loss = losses.ce2n(g, losses.global_logits(g, cfg, t.tg, v.vg))
    if local_term then loss = loss + losses.ce2n(g, (local_term(g, cfg, t, v, wmask, opt))) * cfg.lambda end
    g.loss(loss)
  end
  -- vector-Jacobian products of the encoders: loss = <features, upstream gradient>, so backward()
  -- gives the encoder's parameter gradients for a given gradient of its features
  local function image_vjp(g, cfg)
    local B = g.dim("B")
    local R = (cfg.image / 8) ^ 2
    local v = image_encoder(g, cfg, g.input("images", { B, 1, cfg.image, cfg.image }, { grad = false }))
    local dvg = g.input("d_vg", { B, cfg.width }, { grad = false })
    local dV = g.input("d_V", { B, R, cfg.width }, { grad = false })
    g.loss(g.sum_all(v.vg * dvg) + g.sum_all(v.V * dV))
    g.output("vg", v.vg)
    g.output("V", v.V)
  end
  local function text_vjp(g, cfg)
    local T = g.dim("T")
    local tokens = g.input("tokens", { T, cfg.seq_len }, { dtype = "int32", max = cfg.vocab })
    local t = text_encoder(g, cfg, tokens, g.input("attn_mask", { T, cfg.seq_len }, { role = "mask" }))
    local dtg = g.input("d_tg", { T, cfg.width }, { grad = false })
    local dW = g.input("d_W", { T, cfg.seq_len - 1, cfg.width }, { grad = false })
    g.loss(g.sum_all(t.tg * dtg) + g.sum_all(t.W * dW))
    g.output("tg", t.tg)
    g.output("W", t.W)
  end

  return { defaults = defaults, variant = variant, presets = PRESETS,
    graphs = { main = train, image = image, text = text, score = score,
      features_loss = features_loss, image_vjp = image_vjp, text_vjp = text_vjp } }
end
