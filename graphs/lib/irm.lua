-- SPEC 5: importance-relation reasoning. Each matching gets an importance beta_k from the
-- report's global embedding and the matching itself; S(r, i) = sum_k beta_k s_k.
-- tg [T, d], mp (m') [T, B, K, d], s [T, B, K, 1], wmask [T, K]. Returns S [T, B] and beta.
local L = require("graphs.lib.layers")

return function(g, cfg, tg, mp, s, wmask)
  local T, B, K, d = mp.shape[1], mp.shape[2], mp.shape[3], mp.shape[4]
  local Wa, Wb = L.matrix(g, "irm.Wa", d, d), L.matrix(g, "irm.Wb", d, d)
  local query = g.reshape(g.matmul(tg, Wa), { T, 1, 1, d })
  local e = g.sum(query * g.matmul(mp, Wb), -1) / math.sqrt(d)       -- [T, B, K, 1]
  local beta = g.softmax(e, 3, g.reshape(wmask, { T, 1, K, 1 }))      -- over the valid words
  return g.reshape(g.sum(beta * s, 3), { T, B }), beta
end
