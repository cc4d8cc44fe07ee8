-- The graph DSL (compiler/dsl.lua): declarations of run-time sizes, inputs, parameters and
-- outputs, their defaults, the errors for declaring twice, and the source lines of nodes.
local T = {}

local dsl = require("compiler.dsl")
local compile = require("compiler.compile")

local GOOD = "tests/lua/graphs/good_small.lua"

local function here() return debug.getinfo(2, "l").currentline end
local function this_line(line) return "tests/lua/test_dsl.lua:" .. line end

local function names(list, field)
  local out = {}
  for i, n in ipairs(list) do out[i] = n.attrs and n.attrs[field or "name"] or n[field or "name"] end
  return table.concat(out, " ")
end

function T.declarations_of_a_graph_file(t)
  local entries = dsl.load_file(GOOD)
  t.eq(#entries, 2)
  t.eq(entries[1].name, "good_small.features", "entries sorted by key; main is named after the file")
  t.eq(entries[2].name, "good_small")
  local g = dsl.build(entries[2].name, entries[2].build, { hidden = 6 })
  t.eq(table.concat(g.syms, " "), "B")
  t.eq(names(g.inputs), "x mask y")
  t.eq(names(g.params), "fc1.weight fc1.bias fc2.weight fc2.bias")
  t.shape_eq(g.params[1], "[6,4]")
  t.shape_eq(g.params[3], "[3,6]")
  t.shape_eq(g.inputs[2], "[B,1]")
  -- inputs: role and gradient defaults
  local x, mask, y = g.inputs[1], g.inputs[2], g.inputs[3]
  t.eq(x.attrs.role, "data"); t.eq(x.attrs.grad, true)
  t.eq(mask.attrs.role, "mask"); t.eq(mask.attrs.grad, false, "masks take no gradient")
  t.eq(y.attrs.role, "target"); t.eq(y.attrs.grad, false)
  t.eq(x.dtype, "real")
  -- outputs: the loss comes first, as a scalar
  t.eq(names(g.outputs), "loss pred")
  t.eq(g.outputs[1].is_loss, true)
  t.shape_eq(g.outputs[1].node, "[]")
  t.shape_eq(g.outputs[2].node, "[B,3]")
  t.eq(g.outputs[1].src, t.line_of(GOOD, "-- LOSS"))
end

function T.int32_inputs(t)
  local g = t.build(function(g)
    local B = g.dim("B")
    local ids = g.input("ids", { B, 5 }, { dtype = "int32", max = 7 })
    g.output("e", g.gather(g.param("emb", { 7, 3 }), ids))
  end)
  local ids = g.inputs[1]
  t.eq(ids.dtype, "int32")
  t.eq(ids.attrs.max, 7)
  t.eq(ids.attrs.role, "target", "int32 inputs default to the target role")
  t.eq(ids.attrs.grad, false)
  t.compile_error(t.build, function(g) g.input("x", { 2 }, { dtype = "float16" }) end)
end

function T.presets_and_overrides(t)
  local gs = compile.compile_file(GOOD, {})
  t.shape_eq(gs[2].params[1], "[6,4]", "defaults.hidden")
  gs = compile.compile_file(GOOD, { preset = "wide" })
  t.shape_eq(gs[2].params[1], "[12,4]", "preset wide")
  gs = compile.compile_file(GOOD, { preset = "wide", hidden = 5 })
  t.shape_eq(gs[2].params[1], "[5,4]", "an explicit value beats the preset")
  t.contains(t.compile_error(compile.compile_file, GOOD, { preset = "huge" }), "no preset named 'huge'")
end

function T.declared_twice(t)
  local line
  local msg = t.compile_error(t.build, function(g)
    g.input("x", { 2 })
    line = here(); g.input("x", { 3 })
  end)
  t.contains(msg, "input 'x' declared twice (first at " .. this_line(line - 1) .. ")")
  t.eq(msg:sub(1, #this_line(line)), this_line(line))

  msg = t.compile_error(t.build, function(g)
    g.param("w", { 2, 2 })
    line = here(); g.param("w", { 2, 2 })
  end)
  t.contains(msg, "parameter 'w' declared twice (first at " .. this_line(line - 1) .. ")")
  t.eq(msg:sub(1, #this_line(line)), this_line(line))

  msg = t.compile_error(t.build, function(g)
    local x = g.input("x", { 2 })
    g.output("y", x)
    line = here(); g.output("y", x * 2)
  end)
  t.contains(msg, "output 'y' declared twice")
  t.eq(msg:sub(1, #this_line(line)), this_line(line))

  msg = t.compile_error(t.build, function(g)
    local w = g.param("w", { 2 })
    g.loss(g.sum_all(w))
    line = here(); g.loss(g.sum_all(w * w))
  end)
  t.contains(msg, "loss declared twice")
  t.eq(msg:sub(1, #this_line(line)), this_line(line))

  -- the same name for an input and a parameter is allowed (different tables); a second g.dim
  -- of the same size is a no-op
  local g = t.build(function(g)
    local B = g.dim("B")
    g.dim("B")
    g.output("y", g.input("x", { B, 2 }))
  end)
  t.eq(#g.syms, 1)
end

function T.default_init_is_kaiming_uniform(t)
  local g = t.build(function(g)
    g.param("lin", { 3, 4 })          -- fan_in 4
    g.param("conv", { 8, 2, 3, 3 })   -- fan_in 18
    g.param("bias", { 5 })            -- fan_in 1 (empty product)
    g.param("emb", { 10, 16 }, { init = { "normal", 0.02 } })
    g.param("z", { 4, 4 }, { init = "zeros" })
    g.param("o", { 4 }, { init = "ones" })
    g.param("u", { 4 }, { init = { "uniform", 0.25 } })
    g.output("y", g.param("dummy", { 1 }))
  end)
  local p = g.param_by_name
  t.eq(p.lin.attrs.init, "uniform")
  t.near(p.lin.attrs.init_arg, 0.5, 1e-15, "1/sqrt(4)")
  t.eq(p.conv.attrs.init, "uniform")
  t.near(p.conv.attrs.init_arg, 1 / math.sqrt(18), 1e-15, "1/sqrt(2*3*3)")
  t.near(p.bias.attrs.init_arg, 1, 1e-15)
  t.eq(p.emb.attrs.init, "normal"); t.eq(p.emb.attrs.init_arg, 0.02)
  t.eq(p.z.attrs.init, "zeros"); t.eq(p.o.attrs.init, "ones")
  t.eq(p.u.attrs.init, "uniform"); t.eq(p.u.attrs.init_arg, 0.25)
  -- and they reach the C parameter table: {name, ndim, shape, offset, numel, init, arg, decay, source}
  local c = require("compiler.emit_c").emit(t.compile(function(g)
    local w = g.param("fc.weight", { 3, 4 })
    g.output("y", w * 2)
  end, "init_table"))
  t.contains(c, '{"fc.weight", 2, {3, 4}, 0, 12, RECLF_INIT_UNIFORM, 0.5, 1, "tests/lua/test_dsl.lua:')
end

function T.bad_initialisers(t)
  t.contains(t.compile_error(t.build, function(g) g.param("w", { 2 }, { init = "xavier" }) end), "unknown initialiser 'xavier'")
  t.contains(t.compile_error(t.build, function(g) g.param("w", { 2 }, { init = { "uniform" } }) end), "uniform initialiser needs a number")
  t.contains(t.compile_error(t.build, function(g) g.param("w", { 2 }, { init = { "normal", "big" } }) end), "normal initialiser needs a number")
end

function T.decay_defaults(t)
  local g = t.build(function(g)
    g.param("mat", { 3, 4 })
    g.param("kernel", { 2, 2, 3, 3 })
    g.param("vec", { 4 })
    g.param("mat_nodecay", { 3, 4 }, { decay = false })
    g.param("vec_decay", { 4 }, { decay = true })
    g.output("y", g.param("dummy", { 1 }))
  end)
  local p = g.param_by_name
  t.eq(p.mat.attrs.decay, true, "matrices decay")
  t.eq(p.kernel.attrs.decay, true, "kernels decay")
  t.eq(p.vec.attrs.decay, false, "vectors (biases, norms) do not")
  t.eq(p.mat_nodecay.attrs.decay, false)
  t.eq(p.vec_decay.attrs.decay, true)
end

function T.node_sources_point_to_the_graph_file(t)
  local gs = compile.compile_file(GOOD, {})
  local g = gs[2]
  t.eq(g.name, "good_small")
  -- declarations
  t.eq(g.inputs[1].src, t.line_of(GOOD, "-- INPUT_X"))
  t.eq(g.params[1].src, t.line_of(GOOD, "-- PARAM_W1"))
  -- composites (nn.linear) and operators get the graph line that called them
  local hidden, err = t.line_of(GOOD, "-- HIDDEN"), t.line_of(GOOD, "-- ERR")
  local seen = {}
  for _, n in ipairs(g.schedule) do
    t.ok(n.src:sub(1, #GOOD + 1) == GOOD .. ":", "node " .. n.id .. " " .. n.op .. " comes from " .. n.src)
    seen[n.src] = (seen[n.src] or 0) + 1
    if n.op == "map" and n.attrs.fn == "relu" then t.eq(n.src, hidden) end
    if n.op == "map" and n.attrs.fn == "square" then t.eq(n.src, err) end
  end
  -- the backward of a line carries that line too
  local back_hidden = 0
  for _, n in ipairs(g.schedule) do
    if n.phase == "backward" and n.src == hidden then back_hidden = back_hidden + 1 end
  end
  t.ok(back_hidden >= 3, "the gradient nodes of the hidden layer point to its line")
  -- a block in graphs/lib points to its own line, not to compiler/
  local reclf = compile.compile_file("graphs/reclf.lua", { preset = "tiny" })
  for _, gr in ipairs(reclf) do
    for _, n in ipairs(gr.schedule) do
      t.ok(n.src:match("^graphs/.+%.lua:%d+$"), gr.name .. " node " .. n.id .. " src " .. tostring(n.src))
    end
  end
end

function T.lua_operators(t)
  local g = t.build(function(g)
    local a, b = g.input("a", { 2, 3 }), g.input("b", { 3 })
    g.output("add", a + b)
    g.output("addc", a + 1)
    g.output("raddc", 2 + a)
    g.output("rsub", 1 - a)
    g.output("scale", 3 * a)
    g.output("div", a / 4)
    g.output("rdiv", 2 / a)
    g.output("neg", -a)
    g.output("same", a + 0)
  end)
  local o = {}
  for _, x in ipairs(g.outputs) do o[x.name] = x.node end
  t.eq(o.add.attrs.fn, "add"); t.shape_eq(o.add, "[2,3]")
  t.eq(o.addc.attrs.fn, "addc"); t.eq(o.addc.attrs.c, 1)
  t.eq(o.raddc.attrs.fn, "addc"); t.eq(o.raddc.attrs.c, 2)
  t.eq(o.rsub.attrs.fn, "addc"); t.eq(o.rsub.attrs.c, 1); t.eq(o.rsub.inputs[1].attrs.fn, "neg")
  t.eq(o.scale.attrs.fn, "scale"); t.eq(o.scale.attrs.c, 3)
  t.eq(o.div.attrs.fn, "scale"); t.eq(o.div.attrs.c, 0.25)
  t.eq(o.rdiv.attrs.fn, "scale"); t.eq(o.rdiv.inputs[1].attrs.fn, "recip")
  t.eq(o.neg.attrs.fn, "neg")
  t.eq(o.same, g.inputs[1], "x + 0 is x")
end

function T.graph_without_outputs_or_bad_loss(t)
  t.contains(t.compile_error(t.build, function(g) g.input("x", { 2 }) end, "empty"), "graph 'empty' declares no outputs")
  local line
  local msg = t.compile_error(t.build, function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 4 })
    line = here(); g.loss(x * g.param("w", { 4 }))
  end)
  t.contains(msg, "loss must be a scalar, got shape [B,4]")
  t.eq(msg:sub(1, #this_line(line)), this_line(line))
  t.contains(t.compile_error(t.build, function(g) g.output("y", 3) end), "output 'y' must be a tensor")
  -- a graph file must return a function or {graphs = ...}
  local dir = t.tmpdir()
  local f = assert(io.open(dir .. "/nothing.lua", "w"))
  f:write("return 42\n")
  f:close()
  t.contains(t.compile_error(dsl.load_file, dir .. "/nothing.lua"), "must return function(g, cfg) or {graphs = {...}}")
  f = assert(io.open(dir .. "/syntax.lua", "w"))
  f:write("return function(g)\n  local x = = 1\nend\n")
  f:close()
  t.contains(t.compile_error(dsl.load_file, dir .. "/syntax.lua"), "syntax.lua:2:")
end

return T
