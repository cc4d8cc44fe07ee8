-- Reverse-mode autodiff (compiler/autodiff.lua): gradient shapes, accumulation over several
-- uses, detach, input gradients. The numeric tests build the generated C in double, run it
-- through LuaJIT's FFI (compiler/gradcheck.lua's loader) and compare with gradients worked
-- out by hand.
local T = {}

local ffi = require("ffi")
local gradcheck = require("compiler.gradcheck")
local compile = require("compiler.compile")

-- runs forward and backward of `graph` with the given parameter and input values (flat Lua
-- arrays by name) and run-time sizes; returns loss, param grads by name, input grads by name
local function run(t, graph, params, inputs, dims)
  local G = gradcheck.load(graph, t.root, t.tmpdir())
  local d = ffi.new("long[?]", math.max(1, G.n_syms))
  for i = 0, G.n_syms - 1 do d[i] = assert(dims[ffi.string(G.sym_names[i])], "no size given") end
  local np = tonumber(G.n_param_elems)
  local P = ffi.new("double[?]", math.max(1, np))
  for k = 0, G.n_params - 1 do
    local p = G.params[k]
    local vals = assert(params[ffi.string(p.name)], "no values for " .. ffi.string(p.name))
    t.eq(#vals, tonumber(p.numel), "values for " .. ffi.string(p.name))
    for i = 0, tonumber(p.numel) - 1 do P[tonumber(p.offset) + i] = vals[i + 1] end
  end
  local keep = {}
  local ins = ffi.new("void *[?]", math.max(1, G.n_inputs))
  local igrads = ffi.new("double *[?]", math.max(1, G.n_inputs))
  local in_n = {}
  for k = 0, G.n_inputs - 1 do
    local desc = G.inputs[k]
    local nm = ffi.string(desc.name)
    local vals = assert(inputs[nm], "no values for input " .. nm)
    local buf = ffi.new((desc.dtype == 1 and "int32_t" or "double") .. "[?]", #vals)
    for i = 1, #vals do buf[i - 1] = vals[i] end
    keep[#keep + 1] = buf
    ins[k] = buf
    in_n[k] = #vals
    if desc.needs_grad ~= 0 then
      local gb = ffi.new("double[?]", #vals)
      keep[#keep + 1] = gb
      igrads[k] = gb
    end
  end
  local arena = ffi.new("char[?]", G.arena_bytes(d))
  G.forward(arena, P, ins, d)
  local loss = G.output(arena, 0, d)[0]
  local grads = ffi.new("double[?]", math.max(1, np))
  for i = 0, np - 1 do grads[i] = 999 end -- backward must overwrite every entry
  G.backward(arena, grads, P, ins, igrads, d)
  local pg, ig = {}, {}
  for k = 0, G.n_params - 1 do
    local p = G.params[k]
    local v = {}
    for i = 0, tonumber(p.numel) - 1 do v[i + 1] = grads[tonumber(p.offset) + i] end
    pg[ffi.string(p.name)] = v
  end
  for k = 0, G.n_inputs - 1 do
    if igrads[k] ~= nil then
      local v = {}
      for i = 0, in_n[k] - 1 do v[i + 1] = igrads[k][i] end
      ig[ffi.string(G.inputs[k].name)] = v
    end
  end
  return loss, pg, ig
end

local function vec_near(t, got, want, tol, what)
  t.eq(#got, #want, what .. " length")
  for i = 1, #want do t.near(got[i], want[i], tol, what .. "[" .. i .. "]") end
end

function T.gradient_shapes_equal_parameter_shapes(t)
  local graphs = compile.compile_file("graphs/reclf.lua", { preset = "tiny" })
  for _, gs in ipairs({ graphs, compile.compile_file("tests/lua/graphs/good_small.lua", {}) }) do
    for _, g in ipairs(gs) do
      if g.has_loss then
        t.ok(#g.params > 0)
        for i, p in ipairs(g.params) do
          local gr = g.param_grads[i]
          t.ok(gr, g.name .. ": no gradient for " .. p.attrs.name)
          t.eq(t.shape(gr), t.shape(p), g.name .. ": gradient of " .. p.attrs.name)
          t.eq(gr.phase, "backward")
        end
      else
        t.eq(g.param_grads, nil, g.name .. " has no loss, so no gradients")
      end
    end
  end
  -- SPEC: images take no gradient, token ids are int32, masks none: the training graph
  -- (the entry named after the file) has no input gradients
  local checked = false
  for _, g in ipairs(graphs) do
    if g.name == "reclf" then
      for i, x in ipairs(g.inputs) do t.eq(g.input_grads[i], nil, "input " .. x.attrs.name) end
      checked = true
    end
  end
  t.ok(checked, "graphs/reclf.lua has an entry named reclf")
end

function T.a_node_used_twice_accumulates(t)
  -- loss = sum(w*w + 3w): w is read three times; dloss/dw = 2w + 3
  local g = t.compile(function(g)
    local w = g.param("w", { 3 })
    g.loss(g.sum_all(w * w + w * 3))
  end, "ad_twice")
  local loss, pg = run(t, g, { w = { 1, 2, -1 } }, {}, {})
  t.near(loss, 12, 1e-12, "loss")
  vec_near(t, pg.w, { 5, 7, 1 }, 1e-12, "dw")
  -- the gradient of w is a sum of the contributions (an add in the backward pass)
  local gw = g.param_grads[1]
  t.eq(gw.op, "map"); t.eq(gw.attrs.fn, "add")

  -- through two different branches: loss = sum(exp(w) * w), dloss/dw = exp(w) (1 + w)
  g = t.compile(function(g)
    local w = g.param("w", { 2 })
    g.loss(g.sum_all(g.exp(w) * w))
  end, "ad_branches")
  local _, pg2 = run(t, g, { w = { 0.5, -2 } }, {}, {})
  vec_near(t, pg2.w, { math.exp(0.5) * 1.5, math.exp(-2) * -1 }, 1e-12, "dw")
end

function T.detach_stops_gradients(t)
  -- loss = sum(detach(w) * w): only the second factor carries a gradient, dloss/dw = w (not 2w)
  local g = t.compile(function(g)
    local w = g.param("w", { 3 })
    g.loss(g.sum_all(g.detach(w) * w))
  end, "ad_detach")
  local loss, pg = run(t, g, { w = { 1, 2, -1 } }, {}, {})
  t.near(loss, 6, 1e-12)
  vec_near(t, pg.w, { 1, 2, -1 }, 1e-12, "dw")

  -- a parameter seen only through detach gets no gradient node, and backward writes zeros
  g = t.compile(function(g)
    local a, b = g.param("a", { 2 }), g.param("b", { 2 })
    g.loss(g.sum_all(g.detach(a) * b))
  end, "ad_detach_zero")
  t.eq(g.param_grads[1], nil, "no gradient for a")
  t.ok(g.param_grads[2], "a gradient for b")
  local _, pg2 = run(t, g, { a = { 3, -4 }, b = { 5, 6 } }, {}, {})
  vec_near(t, pg2.a, { 0, 0 }, 0, "da")
  vec_near(t, pg2.b, { 3, -4 }, 1e-12, "db")
end

function T.broadcast_gradients_sum_back(t)
  -- y = (x + b) * c with b [3] broadcast over B rows: dloss/db_j = sum_i c_ij
  local g = t.compile(function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 3 }, { grad = false })
    local c = g.input("c", { B, 3 }, { grad = false })
    local b = g.param("b", { 3 })
    g.loss(g.sum_all((x + b) * c))
  end, "ad_bcast")
  local _, pg = run(t, g, { b = { 0, 0, 0 } }, { x = { 1, 2, 3, 4, 5, 6 }, c = { 1, 2, 3, 10, 20, 30 } }, { B = 2 })
  vec_near(t, pg.b, { 11, 22, 33 }, 1e-12, "db")
end

function T.matmul_gradients(t)
  -- loss = sum(A W): dW[k,n] = sum_m A[m,k], dA[m,k] = sum_n W[k,n]
  local g = t.compile(function(g)
    local A, W = g.param("A", { 2, 2 }), g.param("W", { 2, 3 })
    g.loss(g.sum_all(g.matmul(A, W)))
  end, "ad_matmul")
  local loss, pg = run(t, g, { A = { 1, 2, 3, 4 }, W = { 1, 0, 2, 0, 1, -1 } }, {}, {})
  -- A W = [[1,2,0],[3,4,2]]
  t.near(loss, 12, 1e-12)
  vec_near(t, pg.W, { 4, 4, 4, 6, 6, 6 }, 1e-12, "dW")
  vec_near(t, pg.A, { 3, 0, 3, 0 }, 1e-12, "dA")
end

function T.input_gradients(t)
  -- loss = sum(x * x * w): dloss/dx = 2 x w for the input that asks; none for the one that does not
  local g = t.compile(function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 2 })
    local m = g.input("m", { B, 2 }, { role = "mask" })
    local w = g.param("w", { 2 })
    g.loss(g.sum_all(x * x * w * m))
  end, "ad_inputs")
  t.ok(g.input_grads[1], "x takes a gradient")
  t.eq(g.input_grads[2], nil, "a mask does not")
  local _, pg, ig = run(t, g, { w = { 2, -1 } }, { x = { 1, 2, 3, 4 }, m = { 1, 1, 0, 1 } }, { B = 2 })
  vec_near(t, ig.x, { 4, -4, 0, -8 }, 1e-12, "dx")
  t.eq(ig.m, nil)
  vec_near(t, pg.w, { 1, 4 + 16 }, 1e-12, "dw")
end

function T.backward_nodes_point_to_their_forward_line(t)
  local g = t.compile(function(g)
    local w = g.param("w", { 3 })
    local y = g.tanh(w) -- line L
    g.loss(g.sum_all(y))
  end, "ad_lines")
  local tanh_src
  for _, n in ipairs(g.schedule) do
    if n.op == "map" and n.attrs.fn == "tanh" then tanh_src = n.src end
  end
  t.ok(tanh_src and tanh_src:match("^tests/lua/test_autodiff%.lua:%d+$"), tostring(tanh_src))
  -- d tanh = 1 - y^2: the square node of the backward pass carries tanh's line
  local found = false
  for _, n in ipairs(g.schedule) do
    if n.phase == "backward" and n.op == "map" and n.attrs.fn == "square" then
      t.eq(n.src, tanh_src)
      found = true
    end
  end
  t.ok(found, "backward of tanh has a square")
end

return T
