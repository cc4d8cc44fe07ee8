-- make gradcheck: every op of tests/gradcheck/ops.lua through bin/reclfc's gradient check,
io.stdout:setvbuf("line")
-- in double, relative error <= 1e-6.
local compile = require("compiler.compile")
local gradcheck = require("compiler.gradcheck")

local root = arg[1] or "."
local only = arg[2]
local cases = dofile(root .. "/tests/gradcheck/ops.lua")
local failed, passed = {}, 0
local work = os.tmpname() .. ".gradcheck"
os.execute("mkdir -p " .. work)
for _, c in ipairs(cases) do
  if not only or (only ~= "models" and c.name:find(only, 1, true)) then
    local build = function(g)
      local y = c.build(g)
      local shape = y.shape
      local R = g.input("R", shape, { grad = false })
      g.loss(g.sum_all(y * R))
    end
    -- both the optimised form and the --no-fuse reference
    for _, mode in ipairs({ "fused", "unfused" }) do
      local graph = compile.compile_entry("tests/gradcheck/ops.lua", "op_" .. c.name .. "_" .. mode, build, {},
        { optimize = mode == "fused" })
      print("op " .. c.name .. " (" .. mode .. ")")
      local ok = gradcheck.run(graph, root, { dims = c.dims or { B = 3, T = 2 }, samples = 60, tol = 1e-6, workdir = work })
      if ok then passed = passed + 1 else failed[#failed + 1] = c.name .. " (" .. mode .. ")" end
    end
  end
end
-- every model graph at its tiny preset (SPEC 7 variants): relative error <= 1e-5
if not only or only == "models" then
  local p = io.popen("ls " .. root .. "/graphs/*.lua")
  for file in p:lines() do
    local rel = file:sub(#root + 2)
    local graphs = compile.compile_file(rel, { preset = "tiny" })
    if rel == "graphs/reclf.lua" then -- the flagship once more in the --no-fuse reference form
      for _, g in ipairs(compile.compile_file(rel, { preset = "tiny" }, { optimize = false })) do
        if g.name == "reclf" then
          g.name = "reclf_unfused"
          graphs[#graphs + 1] = g
        end
      end
    end
    for _, graph in ipairs(graphs) do
      -- every variant's training graph; the split-step entries (MPI --gather) of reclf only,
      -- as they are the same code for every variant
      if graph.has_loss and (not graph.name:find("%.") or graph.name:match("^reclf%.")) then
        print("model " .. graph.name .. " (preset tiny)")
        local ok = gradcheck.run(graph, root, { dims = { B = 3, T = 4 }, samples = 12, tol = 1e-5, workdir = work })
        if ok then passed = passed + 1 else failed[#failed + 1] = graph.name end
      end
    end
  end
  p:close()
end
os.execute("rm -rf " .. work)
print(string.format("%d passed, %d failed", passed, #failed))
if #failed > 0 then
  print("failed: " .. table.concat(failed, ", "))
  os.exit(1)
end
