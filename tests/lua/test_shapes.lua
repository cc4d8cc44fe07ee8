-- Shape inference of valid graphs: every op family, with run-time sizes (B, T) in the shapes.
-- (The errors are in test_errors.lua.)
local T = {}

local size = require("compiler.size")

-- builds one graph; `body(g, B, T)` returns a table name -> node, compared with `want`
local function check(t, want, body)
  local got
  t.build(function(g)
    local B, Tn = g.dim("B"), g.dim("T")
    got = body(g, B, Tn)
    g.output("any", g.input("any", { 1 }))
  end)
  local keys = {}
  for k in pairs(want) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    t.ok(got[k], "no node for " .. k)
    t.eq(t.shape(got[k]), want[k], k)
  end
end

function T.matmul(t)
  check(t, {
    plain = "[B,5]", ta_tb = "[3,5]", batched = "[B,3,2]", bcast = "[T,B,3,2]", shared = "[B,7,5]",
    ta_batched = "[B,4,2]",
  }, function(g, B, Tn)
    return {
      plain = g.matmul(g.input("a", { B, 4 }), g.input("b", { 4, 5 })),
      ta_tb = g.matmul(g.input("c", { 4, 3 }), g.input("d", { 5, 4 }), { ta = true, tb = true }),
      batched = g.matmul(g.input("e", { B, 3, 4 }), g.input("f", { B, 4, 2 })),
      -- batch dimensions broadcast like numpy: [T,1] with [1,B] gives [T,B]
      bcast = g.matmul(g.input("h", { Tn, 1, 3, 4 }), g.input("i", { 1, B, 2, 4 }), { tb = true }),
      -- a shared 2-D right operand folds the batch into the rows and back
      shared = g.matmul(g.input("j", { B, 7, 4 }), g.input("k", { 4, 5 })),
      ta_batched = g.matmul(g.input("l", { B, 3, 4 }), g.input("m", { 3, 2 }), { ta = true }),
    }
  end)
end

function T.shared_operand_is_one_gemm(t)
  -- [B,7,4] x [4,5]: one [7*B,4] x [4,5] GEMM between two reshapes
  local y
  t.build(function(g)
    local B = g.dim("B")
    y = g.matmul(g.input("x", { B, 7, 4 }), g.input("w", { 4, 5 }))
    g.output("y", y)
  end)
  t.eq(y.op, "reshape")
  local mm = y.inputs[1]
  t.eq(mm.op, "matmul")
  t.eq(t.shape(mm), "[7*B,5]")
  t.eq(t.shape(mm.inputs[1]), "[7*B,4]")
end

function T.elementwise_broadcasting(t)
  check(t, {
    row = "[B,3,4]", col = "[B,3,4]", outer = "[T,B,4]", scalar = "[B,3,4]", unary = "[B,3,4]",
    expand = "[B,3,4]", zero_d = "[B,3,4]",
  }, function(g, B, Tn)
    local x = g.input("x", { B, 3, 4 })
    return {
      row = x + g.input("r", { 4 }),
      col = x * g.input("c", { B, 3, 1 }),
      outer = g.input("u", { Tn, 1, 4 }) - g.input("v", { B, 4 }),
      scalar = x / 2,
      unary = g.gelu(x),
      expand = g.expand(g.input("e", { 1, 3, 1 }), { B, 3, 4 }),
      zero_d = x * g.reshape(g.input("s", { 1 }), {}),
    }
  end)
end

function T.reductions(t)
  check(t, {
    sum_keep = "[B,1,4]", sum_drop = "[B,4]", max_last = "[B,3,1]", mean_batch = "[1,3,4]", all = "[]",
    softmax = "[B,3,4]", lse = "[B,3,1]", ln = "[B,3,4]", l2 = "[B,3,4]",
  }, function(g, B)
    local x = g.input("x", { B, 3, 4 })
    return {
      sum_keep = g.sum(x, 2), sum_drop = g.sum(x, 2, false), max_last = g.max(x, -1),
      mean_batch = g.mean(x, 1), all = g.sum_all(x),
      softmax = g.softmax(x, -1, g.input("m", { B, 1, 4 })), lse = g.logsumexp(x, 3),
      ln = g.layer_norm(x, g.param("ln.weight", { 4 }), g.param("ln.bias", { 4 })),
      l2 = g.l2norm(x, -1),
    }
  end)
end

function T.mean_over_a_run_time_size_divides_by_it(t)
  -- the mean over B is a sum times 1/B, with B known only at run time
  local m
  t.build(function(g)
    local B = g.dim("B")
    m = g.mean(g.input("x", { B, 3 }), 1)
    g.output("m", m)
  end)
  t.eq(m.op, "map"); t.eq(m.attrs.fn, "scale")
  t.eq(type(m.attrs.c), "table")
  t.eq(m.attrs.c.k, 1)
  t.eq(size.c(m.attrs.c.den), "B")
  t.eq(m.inputs[1].op, "reduce")
end

function T.data_movement(t)
  check(t, {
    reshape = "[B*T,4]", permute = "[4,B,3]", transpose = "[B,4,3]", slice = "[B,3,2]", pad = "[B,6,4]",
    concat = "[B,7,4]", reshape_fold = "[B,12]",
  }, function(g, B, Tn)
    local x = g.input("x", { B, 3, 4 })
    return {
      reshape = g.reshape(g.input("y", { B, Tn, 4 }), { size.dim_of(size.prod({ B, Tn })), 4 }),
      permute = g.permute(x, { 3, 1, 2 }),
      transpose = g.transpose(x),
      slice = g.slice(x, 3, 1, 2),
      pad = g.pad(x, 2, 1, 2),
      concat = g.concat({ x, g.input("z", { B, 4, 4 }) }, 2),
      reshape_fold = g.reshape(x, { B, 12 }),
    }
  end)
end

function T.conv_and_pooling(t)
  check(t, {
    s1p1 = "[B,8,7,7]", s2p1 = "[B,8,4,4]", s2p0 = "[B,8,3,3]", pool = "[B,3,4,4]", up = "[B,3,16,16]",
    gn = "[B,6,5,5]", im2col = "[B,27,16]",
  }, function(g, B)
    local x = g.input("x", { B, 3, 7, 7 })
    local w = g.param("w", { 8, 3, 3, 3 })
    return {
      s1p1 = g.conv2d(x, w, g.param("b", { 8 }), 1, 1),
      s2p1 = g.conv2d(x, w, nil, 2, 1),
      s2p0 = g.conv2d(x, w, nil, 2, 0),
      pool = g.avg_pool(g.input("p", { B, 3, 8, 8 }), 2),
      up = g.upsample2(g.input("p2", { B, 3, 8, 8 })),
      gn = g.group_norm(g.input("q", { B, 6, 5, 5 }), 3, g.param("gn.w", { 6 }), g.param("gn.b", { 6 })),
      im2col = g.im2col(g.input("r", { B, 3, 8, 8 }), { kh = 3, kw = 3, stride = 2, pad = 1 }),
    }
  end)
end

function T.indices(t)
  check(t, {
    gather = "[B,7,6]", scatter = "[10,6]", onehot = "[B,5]", ce = "[B]", eye = "[T,B]", fill = "[2,3]",
  }, function(g, B, Tn)
    local ids = g.input("ids", { B, 7 }, { dtype = "int32", max = 10 })
    local gathered = g.gather(g.param("emb", { 10, 6 }), ids)
    local tg = g.input("tg", { B }, { dtype = "int32", max = 5 })
    return {
      gather = gathered,
      scatter = g.scatter_add(gathered, ids, 10),
      onehot = g.onehot(tg, 5),
      ce = g.cross_entropy(g.input("logits", { B, 5 }), tg),
      eye = g.eye(Tn, B),
      fill = g.fill({ 2, 3 }, 0.5),
    }
  end)
end

function T.dtypes(t)
  local ids, e, r
  t.build(function(g)
    local B = g.dim("B")
    ids = g.input("ids", { B, 2 }, { dtype = "int32", max = 4 })
    r = g.reshape(ids, { 2, B })
    e = g.gather(g.param("emb", { 4, 3 }), ids)
    g.output("e", e)
  end)
  t.eq(ids.dtype, "int32")
  t.eq(r.dtype, "int32", "a view keeps its input's type")
  t.eq(e.dtype, "real")
end

function T.model_graphs_have_the_spec_shapes(t)
  -- SPEC 1-6 at default size: the outputs of reclf's four entry points
  local gs = require("compiler.compile").compile_file("graphs/reclf.lua", {})
  local by = {}
  for _, g in ipairs(gs) do
    for _, o in ipairs(g.outputs) do by[g.name .. ":" .. o.name] = t.shape(o.node) end
  end
  t.eq(by["reclf:loss"], "[]")
  t.eq(by["reclf.image:vg"], "[B,128]")
  t.eq(by["reclf.image:V"], "[B,64,128]")
  t.eq(by["reclf.image:F0"], "[B,32,64,64]")
  t.eq(by["reclf.image:F1"], "[B,32,32,32]")
  t.eq(by["reclf.image:F2"], "[B,64,16,16]")
  t.eq(by["reclf.image:F3"], "[B,128,8,8]")
  t.eq(by["reclf.text:tg"], "[T,128]")
  t.eq(by["reclf.text:W"], "[T,39,128]")
  t.eq(by["reclf.score:G"], "[T,B]")
  t.eq(by["reclf.score:Lm"], "[T,B]")
end

return T
