-- SPEC 2: a small pre-LN transformer over tokens [T, L] (int32) with a key padding mask
-- attn_mask [T, L] (1 on every token but [PAD]). Returns t_g [T, d] and the words W [T, L-1, d].
local L = require("graphs.lib.layers")

-- multi-head self-attention; x [T, L, d], mask [T, L]
local function attention(g, cfg, prefix, x, attn_mask)
  local T, len, d, heads = x.shape[1], cfg.seq_len, cfg.width, cfg.heads
  local dh = d / heads
  local function split_heads(y) -- [T, L, d] -> [T, heads, L, dh]
    return g.permute(g.reshape(y, { T, len, heads, dh }), { 1, 3, 2, 4 })
  end
  local q = split_heads(L.linear(g, prefix .. ".q", x, d, d))
  local k = split_heads(L.linear(g, prefix .. ".k", x, d, d))
  local v = split_heads(L.linear(g, prefix .. ".v", x, d, d))
  local scores = g.matmul(q, k, { tb = true }) / math.sqrt(dh)                 -- [T, heads, L, L]
  local p = g.softmax(scores, -1, g.reshape(attn_mask, { T, 1, 1, len }))       -- [PAD] keys hidden
  local o = g.matmul(p, v)                                                      -- [T, heads, L, dh]
  o = g.reshape(g.permute(o, { 1, 3, 2, 4 }), { T, len, d })
  return L.linear(g, prefix .. ".o", o, d, d)
end

local function block(g, cfg, prefix, h, attn_mask)
  h = h + attention(g, cfg, prefix, L.layer_norm(g, prefix .. ".ln1", h, cfg.width), attn_mask)
  local f = L.linear(g, prefix .. ".fc1", L.layer_norm(g, prefix .. ".ln2", h, cfg.width), cfg.width, cfg.ffn)
  return h + L.linear(g, prefix .. ".fc2", g.gelu(f), cfg.ffn, cfg.width)
end

return function(g, cfg, tokens, attn_mask)
  local T, len, d = tokens.shape[1], cfg.seq_len, cfg.width
  local tok_emb = g.param("text.tok_emb", { cfg.vocab, d }, { init = { "normal", 0.02 }, decay = false })
  local pos_emb = g.param("text.pos_emb", { len, d }, { init = { "normal", 0.02 }, decay = false })
  local h = g.gather(tok_emb, tokens) + pos_emb                                 -- [T, L, d]
  for b = 0, cfg.blocks - 1 do h = block(g, cfg, "text.blocks." .. b, h, attn_mask) end
  h = L.layer_norm(g, "text.ln_f", h, d)
  local cls = g.reshape(g.slice(h, 2, 0, 1), { T, d })
  local tg = L.linear(g, "text.global_proj", cls, d, d)                          -- [T, d]
  local W = L.linear(g, "text.word_proj", g.slice(h, 2, 1, len - 1), d, d)       -- [T, K, d]
  return { tg = tg, W = W }
end
