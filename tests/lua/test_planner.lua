-- The arena planner (compiler/passes/plan.lua): for several graphs and several run-time sizes,
-- no two buffers that are live at the same time overlap, every buffer lies inside the arena,
-- and the arena is no larger than the sum of the buffers. Checked twice: with the planner's own
-- M.verify, and independently here, from the schedule (our own liveness) and the very C
-- offset expressions the emitter writes (plan.offset_c, plan.terms_c).
local T = {}

local compile = require("compiler.compile")
local plan = require("compiler.passes.plan")
local ops = require("compiler.ops")
local size = require("compiler.size")

local ENVS = { { B = 1, T = 1 }, { B = 3, T = 7 }, { B = 32, T = 64 }, { B = 5, T = 2 } }

-- value of a C size expression such as "48 + 16*B + 32*B*T"
local function eval_c(expr, env)
  local e = expr:gsub("[%a_][%w_]*", function(name)
    return tostring(assert(env[name], "no value for " .. name))
  end)
  return assert(load("return " .. e))()
end

local function env_str(env)
  return string.format("B=%d,T=%d", env.B, env.T)
end

-- our own liveness: a buffer (a non-view node) lives from its position in the schedule to the
-- last node that reads it or a view of it; outputs and gradients live to the end. An op's
-- workspace lives during its own kernel only.
local function lifetimes(g)
  local pos, root = {}, {}
  for i, n in ipairs(g.schedule) do
    pos[n.id] = i
    root[n.id] = ops[n.op].alias and root[n.inputs[1].id] or n
  end
  local stop = {}
  for i, n in ipairs(g.schedule) do
    for _, x in ipairs(n.inputs) do
      local r = root[x.id]
      stop[r.id] = math.max(stop[r.id] or 0, i)
    end
  end
  local last = #g.schedule + 1
  local function keep(n) if n then stop[root[n.id].id] = last end end
  for _, o in ipairs(g.outputs) do keep(o.node) end
  for _, x in pairs(g.param_grads or {}) do keep(x) end
  for _, x in pairs(g.input_grads or {}) do keep(x) end
  local bufs = {}
  for _, n in ipairs(g.schedule) do
    local def = ops[n.op]
    if not def.leaf and not def.alias then
      bufs[#bufs + 1] = { node = n, start = pos[n.id], stop = math.max(stop[n.id] or pos[n.id], pos[n.id]) }
      local ws = def.workspace and def.workspace(n)
      if ws and size.eval(ws, { B = 1, T = 1 }) > 0 then
        bufs[#bufs + 1] = { node = n, workspace = ws, start = pos[n.id], stop = pos[n.id] }
      end
    end
  end
  return bufs
end

-- checks one graph at one size; returns peak and sum (elements)
local function check_plan(t, g, env)
  local what = g.name .. " at " .. env_str(env)
  local ok, err = plan.verify(g, env)
  t.ok(ok, what .. ": plan.verify: " .. tostring(err))

  local arena = eval_c(plan.terms_c(g.plan.total_terms), env)
  local bufs = lifetimes(g)
  local sum, biggest = 0, 0
  for _, b in ipairs(bufs) do
    local n = b.node
    b.lo = eval_c(b.workspace and plan.workspace_offset_c(g, n) or plan.offset_c(g, n), env)
    local m = b.workspace or size.numel(n.shape)
    b.len = size.eval(m, env)
    b.hi = b.lo + b.len
    t.ok(b.lo >= 0 and b.hi <= arena, string.format("%s: %%%d [%d, %d) outside the arena of %d", what, n.id, b.lo, b.hi, arena))
    t.eq(b.lo % 16, 0, what .. ": %" .. n.id .. " offset is 64-byte aligned")
    -- the planner rounds each constant factor up to 16 elements
    sum = sum + math.ceil(m.c / 16) * 16 * (b.len / m.c)
    biggest = math.max(biggest, b.len)
  end
  -- sweep in offset order: only neighbours in memory can overlap
  table.sort(bufs, function(a, b) return a.lo < b.lo end)
  for i = 1, #bufs do
    local x = bufs[i]
    for j = i + 1, #bufs do
      local y = bufs[j]
      if y.lo >= x.hi then break end
      if x.start <= y.stop and y.start <= x.stop then
        t.fail(string.format("%s: %%%d [%d,%d) live %d-%d and %%%d [%d,%d) live %d-%d overlap", what,
          x.node.id, x.lo, x.hi, x.start, x.stop, y.node.id, y.lo, y.hi, y.start, y.stop))
      end
    end
  end
  t.ok(arena <= sum, string.format("%s: arena %d > sum of buffers %d", what, arena, sum))
  t.ok(arena >= biggest, what .. ": arena smaller than its largest buffer")
  -- what the compiler reports at its reference sizes is this same arithmetic
  return arena, sum
end

local function check_file(t, file, cfg)
  local graphs = compile.compile_file(file, cfg or {})
  t.ok(#graphs > 0)
  for _, g in ipairs(graphs) do
    for _, env in ipairs(ENVS) do check_plan(t, g, env) end
  end
  return graphs
end

function T.reclf_default_size(t)
  local graphs = check_file(t, "graphs/reclf.lua")
  -- the planner reuses memory: the training graph's arena is well below the sum of its buffers
  for _, g in ipairs(graphs) do
    if g.name == "reclf" then
      local arena, sum = check_plan(t, g, { B = 32, T = 32 })
      t.ok(arena < 0.6 * sum, string.format("reclf arena %d vs buffers %d: little reuse", arena, sum))
      -- and the compile-time report (reference B = T = 32) says the same
      t.eq(g.plan.peak_elems, arena)
    end
  end
end

function T.reclf_tiny(t) check_file(t, "graphs/reclf.lua", { preset = "tiny" }) end
function T.gloria_and_convirt_tiny(t)
  check_file(t, "graphs/gloria.lua", { preset = "tiny" })
  check_file(t, "graphs/convirt.lua", { preset = "tiny" })
end
function T.small_graphs(t)
  check_file(t, "tests/lua/graphs/good_small.lua")
  check_file(t, "tests/kernels/ops.lua")
end

function T.views_share_their_input_buffer(t)
  local g = t.compile(function(g)
    local B = g.dim("B")
    local x = g.exp(g.input("x", { B, 6 }))
    local r = g.reshape(x, { B, 2, 3 })
    g.output("y", g.sum(r, 3, false) + g.max(g.detach(r), 3, false))
  end, "views")
  local reshape
  for _, n in ipairs(g.schedule) do if n.op == "reshape" then reshape = n end end
  t.ok(reshape, "a reshape node")
  t.eq(g.plan.by_root[reshape.id], nil, "a view has no buffer of its own")
  t.eq(plan.offset_c(g, reshape), plan.offset_c(g, reshape.inputs[1]))
  -- and its input lives as long as the view is read
  for _, env in ipairs(ENVS) do check_plan(t, g, env) end
end

function T.verify_detects_an_overlap(t)
  -- a checker that cannot fail proves nothing: break a plan on purpose
  local g = compile.compile_file("tests/lua/graphs/good_small.lua", {})[2]
  local env = { B = 3 }
  t.ok(plan.verify(g, env))
  local a, b
  for i, x in ipairs(g.plan.bufs) do
    for j = i + 1, #g.plan.bufs do
      local y = g.plan.bufs[j]
      if not a and x.class == y.class and x.start <= y.stop and y.start <= x.stop and x.offset ~= y.offset then a, b = x, y end
    end
  end
  t.ok(a, "two buffers of one class live at the same time")
  local saved = b.offset
  b.offset = a.offset
  local ok, err = plan.verify(g, env)
  b.offset = saved
  t.eq(ok, false)
  t.contains(err, "overlap while both live")
end

return T
