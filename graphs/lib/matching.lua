-- SPEC 3: word -> region local matching for every report r and image i of the batch.
-- W [T, K, d] words, V [B, R, d] regions. Returns the matchings m [T, B, K, d], the
-- attention a [T, B, K, R] and the cosine of each word with its context, cos [T, B, K, 1].
return function(g, cfg, W, V)
  local T, K, d = W.shape[1], W.shape[2], W.shape[3]
  local B, R = V.shape[1], V.shape[2]
  local Wn = g.reshape(g.l2norm(W, -1), { T, 1, K, d })
  local Vb = g.reshape(V, { 1, B, R, d })
  local Vn = g.l2norm(Vb, -1)
  local a = g.softmax(g.matmul(Wn, Vn, { tb = true }) / cfg.tau1, -1) -- a_kj over regions j
  local c = g.matmul(a, Vb)                                             -- c_k = sum_j a_kj V_ij
  local m = Wn * g.l2norm(c, -1)                                        -- sum_d m_k = cos(W_rk, c_k)
  return { m = m, a = a, cos = g.sum(m, -1) }
end
