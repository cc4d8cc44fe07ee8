-- Common-subexpression and dead-node removal (compiler/passes/simplify.lua), and the schedule
-- they leave behind.
local T = {}

local compile = require("compiler.compile")

local function count(g, pred)
  local n = 0
  for _, x in ipairs(g.schedule) do if pred(x) then n = n + 1 end end
  return n
end
local function is_fn(fn) return function(n) return n.op == "map" and n.attrs.fn == fn end end

function T.duplicate_subexpressions_are_merged(t)
  local g = t.compile(function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 4 })
    local a = g.exp(x) + 1       -- the same chain twice
    local b = g.exp(x) + 1
    g.output("a", a)
    g.output("b", b)
    g.output("s", g.sum(g.exp(x), 2) + g.sum(g.exp(x), 2))
  end, "cse_dup")
  t.eq(count(g, is_fn("exp")), 1, "one exp")
  t.eq(count(g, is_fn("addc")), 1, "one exp + 1")
  t.eq(count(g, function(n) return n.op == "reduce" end), 1, "one sum")
  -- both outputs now name the same node
  t.eq(g.outputs[1].node, g.outputs[2].node)
  -- and the merged add reads the one sum twice
  local s = g.outputs[3].node
  t.eq(s.attrs.fn, "add")
  t.eq(s.inputs[1], s.inputs[2])
end

function T.different_attributes_or_inputs_are_kept(t)
  local g = t.compile(function(g)
    local B = g.dim("B")
    local x, y = g.input("x", { B, 4 }), g.input("y", { B, 4 })
    g.output("s2", x * 2)
    g.output("s3", x * 3)
    g.output("ex", g.exp(x))
    g.output("ey", g.exp(y))
    g.output("sum1", g.sum(x, 1))
    g.output("sum2", g.sum(x, 2))
    g.output("sl0", g.slice(x, 2, 0, 2))
    g.output("sl1", g.slice(x, 2, 1, 2))
  end, "cse_keep")
  t.eq(count(g, is_fn("scale")), 2)
  t.eq(count(g, is_fn("exp")), 2)
  t.eq(count(g, function(n) return n.op == "reduce" end), 2)
  t.eq(count(g, function(n) return n.op == "slice" end), 2)
end

function T.dead_nodes_are_removed(t)
  local g = t.compile(function(g)
    local B = g.dim("B")
    local x = g.input("x", { B, 4 })
    local unused_input = g.input("u", { B, 4 })
    local _ = g.log(x) * 7              -- never used
    local _ = g.sqrt(unused_input)      -- never used
    g.output("y", g.tanh(x))
  end, "dce")
  t.eq(count(g, is_fn("log")), 0)
  t.eq(count(g, is_fn("scale")), 0)
  t.eq(count(g, is_fn("sqrt")), 0)
  t.eq(count(g, is_fn("tanh")), 1)
  -- inputs and parameters stay (they are part of the ABI) even when unused
  t.eq(count(g, function(n) return n.op == "input" end), 2)
  -- nothing in the emitted C computes the dead nodes
  local c = require("compiler.emit_c").emit(g)
  t.not_contains(c, "log(")
  t.not_contains(c, "sqrt(")
end

function T.backward_of_unused_branches_is_removed(t)
  -- y only feeds an output that is not the loss: its gradient is never built or kept
  local g = t.compile(function(g)
    local w = g.param("w", { 3 })
    g.output("feature", g.sigmoid(w))
    g.loss(g.sum_all(w * w))
  end, "dce_backward")
  t.eq(count(g, function(n) return n.phase == "backward" and n.op == "map" and n.attrs.fn == "sigmoid" end), 0)
  t.eq(count(g, is_fn("sigmoid")), 1)
end

-- on whole models: no two scheduled nodes compute the same thing, the schedule is topological,
-- and everything scheduled is needed
function T.model_schedules_are_clean(t)
  local simplify = require("compiler.passes.simplify")
  for _, file in ipairs({ "graphs/reclf.lua", "graphs/gloria.lua", "tests/lua/graphs/good_small.lua" }) do
    for _, g in ipairs(compile.compile_file(file, { preset = file:match("^graphs/") and "tiny" or nil })) do
      local pos, seen = {}, {}
      for i, n in ipairs(g.schedule) do
        for _, x in ipairs(n.inputs) do
          t.ok(pos[x.id], g.name .. ": %" .. n.id .. " reads %" .. x.id .. " before it is computed")
        end
        pos[n.id] = i
        if n.op ~= "input" and n.op ~= "param" then
          local ids = {}
          for k, x in ipairs(n.inputs) do ids[k] = x.id end
          local key = n.op .. "|" .. table.concat(ids, ",") .. "|" .. simplify.serialize(n.attrs)
          t.ok(not seen[key], g.name .. ": %" .. n.id .. " duplicates %" .. tostring(seen[key]))
          seen[key] = n.id
        end
      end
      -- liveness: every non-leaf node reaches an output or a gradient
      local used = {}
      local stack = {}
      for _, o in ipairs(g.outputs) do stack[#stack + 1] = o.node end
      for _, x in pairs(g.param_grads or {}) do stack[#stack + 1] = x end
      for _, x in pairs(g.input_grads or {}) do stack[#stack + 1] = x end
      while #stack > 0 do
        local n = table.remove(stack)
        if not used[n.id] then
          used[n.id] = true
          for _, x in ipairs(n.inputs) do stack[#stack + 1] = x end
        end
      end
      for _, n in ipairs(g.schedule) do
        if n.op ~= "input" and n.op ~= "param" then t.ok(used[n.id], g.name .. ": %" .. n.id .. " is dead") end
      end
    end
  end
end

return T
