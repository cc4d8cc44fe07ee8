-- A small, correct training graph: a two-layer perceptron with a masked mean-squared loss.
-- The tests look lines up by their marker comments, so markers must stay unique.
return {
  presets = { wide = { hidden = 12 } },
  defaults = { hidden = 6 },
  graphs = {
    main = function(g, cfg)
      local B = g.dim("B")
      local x = g.input("x", { B, 4 })                                   -- INPUT_X
      local mask = g.input("mask", { B, 1 }, { role = "mask" })
      local y = g.input("y", { B, 3 }, { role = "target", grad = false })
      local w1 = g.param("fc1.weight", { cfg.hidden, 4 })                -- PARAM_W1
      local b1 = g.param("fc1.bias", { cfg.hidden }, { init = "zeros" })
      local w2 = g.param("fc2.weight", { 3, cfg.hidden }, { init = { "normal", 0.02 }, decay = false })
      local b2 = g.param("fc2.bias", { 3 }, { decay = true })
      local h = g.relu(g.linear(x, w1, b1))                              -- HIDDEN
      local p = g.linear(h, w2, b2)
      local err = g.square(p - y) * mask                                 -- ERR
      g.output("pred", p)
      g.loss(g.sum_all(err) / 3)                                         -- LOSS
    end,
    -- a second entry point: features only, no loss
    features = function(g, cfg)
      local B = g.dim("B")
      local x = g.input("x", { B, 4 })
      local w1 = g.param("fc1.weight", { cfg.hidden, 4 })
      g.output("h", g.relu(g.linear(x, w1)))                             -- FEATURES
    end,
  },
}
