-- SPEC 4: semantic-relation reasoning. The relation graph A_r comes from report r's words and
-- is shared by its B pairs; matchings exchange information along it. Wo starts at zero, so an
-- untrained SRM is the identity. m [T, B, K, d], W [T, K, d], wmask [T, K].
local L = require("graphs.lib.layers")

return function(g, cfg, m, W, wmask, prefix)
  prefix = prefix or "srm"
  local T, B, K, d = m.shape[1], m.shape[2], m.shape[3], m.shape[4]
  local Wq, Wk = L.matrix(g, prefix .. ".Wq", d, d), L.matrix(g, prefix .. ".Wk", d, d)
  local Wv, Wo = L.matrix(g, prefix .. ".Wv", d, d), L.matrix(g, prefix .. ".Wo", d, d, { init = "zeros" })
  local scores = g.matmul(g.matmul(W, Wq), g.matmul(W, Wk), { tb = true }) / math.sqrt(d) -- [T, K, K]
  local A = g.softmax(scores, -1, g.reshape(wmask, { T, 1, K }))                         -- over valid k'
  local mixed = g.matmul(g.reshape(A, { T, 1, K, K }), g.matmul(m, Wv))                  -- [T, B, K, d]
  return m + g.matmul(mixed, Wo)
end
