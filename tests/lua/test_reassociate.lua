-- The reassociation pass (compiler/passes/reassociate.lua) must keep every value and make the
-- SRM/IRM chains cheaper.
local compile = require("compiler.compile")
local gradcheck = require("compiler.gradcheck")
local T = {}

local function main_entry(file, opt)
  for _, g in ipairs(compile.compile_file(file, { preset = "tiny" }, opt)) do
    if g.has_loss and not g.name:find("%.") then return g end
  end
end

for _, variant in ipairs({ "reclf", "reclf-nosrm", "reclf-noirm" }) do
  T["same_loss_" .. variant:gsub("-", "_")] = function(t)
    local file = "graphs/" .. variant .. ".lua"
    local plain, fast = main_entry(file, { optimize = false }), main_entry(file)
    local opts = { dims = { B = 3, T = 4 }, loss_only = true, workdir = t.tmpdir() }
    local l1 = gradcheck.run(plain, t.root, opts)
    local l2 = gradcheck.run(fast, t.root, opts)
    t.ok(math.abs(l1 - l2) <= 1e-12 * math.max(1, math.abs(l1)), string.format("loss %.17g vs %.17g", l1, l2))
  end
end

function T.reclf_gets_cheaper(t)
  local env = { B = 32, T = 32 }
  local plain = main_entry("graphs/reclf.lua", { optimize = false })
  local fast = main_entry("graphs/reclf.lua")
  t.ok(fast.stats_reassociated >= 2, "both SRM's s_k and IRM's e_k are rewritten")
  -- at the default size the per-pair d x d products dominate; at tiny they still must shrink
  t.ok(compile.flops(fast, env) < compile.flops(plain, env), "fewer FLOPs after reassociation")
end

function T.untouched_without_a_pattern(t)
  -- convirt has no contraction of a shared linear product: nothing to rewrite
  local g = main_entry("graphs/convirt.lua")
  t.eq(g.stats_reassociated, 0)
end

return T
