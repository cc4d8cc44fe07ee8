-- SPEC 6 and 8a: the symmetric contrastive loss over a texts x images logit matrix X [T, B].
-- The first B texts are the images' own reports; texts B+1..T (side-swapped copies, SPEC 8a)
-- are extra negatives: CE2n(X) = 1/2 (CE over the B real reports' rows + CE over X^T rows).
-- With T = B this is CE2 of SPEC 6. Targets are the diagonal (an eye mask [T, B]).
local losses = {}

function losses.ce2n(g, X)
  local T, B = X.shape[1], X.shape[2]
  local E = g.eye(T, B)
  local per_text = g.logsumexp(X, 2) - g.sum(X * E, 2)       -- [T, 1] text -> image
  local per_image = g.logsumexp(X, 1) - g.sum(X * E, 1)      -- [1, B] image -> text, over all T
  local real = g.sum(E, 2)                                   -- 1 for the B real reports
  local t2i = g.sum(per_text * real, 1)                      -- [1, 1]
  local i2t = g.sum(per_image, 2)                            -- [1, 1]
  -- 1/2 (mean over the B reports + mean over the B images)
  return g.reshape(g.scale(t2i + i2t, { k = 0.5, den = { c = 1, s = { [B] = 1 } } }), {})
end

-- G[r, i] = norm(t_g,r) . norm(v_g,i) / tau_g
function losses.global_logits(g, cfg, tg, vg)
  return g.matmul(g.l2norm(tg, -1), g.l2norm(vg, -1), { tb = true }) / cfg.tau_g
end

return losses
