-- bin/reclfc GRAPH.lua -o DIR [options]: compiles one graph file into DIR/<graph>.{c,h}.
local compile = require("compiler.compile")
local size = require("compiler.size")

local USAGE = [[
usage: reclfc GRAPH.lua [-o DIR] [options]
  -o DIR            write DIR/<graph>.c and DIR/<graph>.h (default: generated)
  --set KEY=VALUE   override a graph configuration value (numbers and true/false are converted)
  --preset NAME     start from a configuration preset of the graph file (e.g. tiny)
  --dot FILE        write a Graphviz DOT picture of the graph (shapes on edges)
  --gradcheck       build the graph in double and compare every gradient with finite differences
  --dims B=3,T=4    run-time sizes for --gradcheck (default 3 each)
  --samples N       entries checked per tensor by --gradcheck (default 40; all when smaller)
  --tol X           largest relative error --gradcheck accepts (default 1e-6)
  --no-fuse         keep the plain reference form: no reassociation, fusion, accumulation or epilogues
  --ir              print the IR after planning
  -q, --quiet       print nothing but errors
]]

local function root_dir()
  local src = debug.getinfo(1, "S").source:sub(2)
  local dir = src:match("^(.*)/compiler/[^/]*$")
  return dir or "."
end

local function parse_value(v)
  if v == "true" then return true elseif v == "false" then return false end
  return tonumber(v) or v
end

local function main(argv)
  local opt = { out = "generated", cfg = {}, dims = {} }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local function val() i = i + 1; if not argv[i] then io.stderr:write("reclfc: " .. a .. " needs a value\n" .. USAGE) os.exit(2) end return argv[i] end
    if a == "-o" then opt.out = val()
    elseif a == "--set" then
      local k, v = val():match("^([%w_%.]+)=(.*)$")
      if not k then io.stderr:write("reclfc: --set expects KEY=VALUE\n") os.exit(2) end
      opt.cfg[k] = parse_value(v)
    elseif a == "--preset" then opt.cfg.preset = val()
    elseif a == "--dot" then opt.dot = val()
    elseif a == "--gradcheck" then opt.gradcheck = true
    elseif a == "--dims" then
      for k, v in val():gmatch("([%w_]+)=(%d+)") do opt.dims[k] = tonumber(v) end
    elseif a == "--samples" then opt.samples = tonumber(val())
    elseif a == "--tol" then opt.tol = tonumber(val())
    elseif a == "--ir" then opt.ir = true
    elseif a == "--no-fuse" then opt.no_fuse = true
    elseif a == "-q" or a == "--quiet" then opt.quiet = true
    elseif a == "-h" or a == "--help" then io.write(USAGE) os.exit(0)
    elseif a:sub(1, 1) == "-" then io.stderr:write("reclfc: unknown option " .. a .. "\n" .. USAGE) os.exit(2)
    elseif opt.file then io.stderr:write("reclfc: one graph file at a time\n") os.exit(2)
    else opt.file = a end
    i = i + 1
  end
  if not opt.file then io.stderr:write(USAGE) os.exit(2) end
  local fh = io.open(opt.file, "r")
  if not fh then io.stderr:write("reclfc: " .. opt.file .. ": no such graph file\n") os.exit(1) end
  fh:close()

  local ok, graphs = pcall(compile.compile_file, opt.file, opt.cfg, { optimize = not opt.no_fuse })
  if not ok then
    local e = graphs
    if compile.is_compile_error(e) then
      io.stderr:write("reclfc: error: " .. e.msg .. "\n")
      if opt.dot and e.node then
        local f = io.open(opt.dot, "w")
        f:write(require("compiler.dot").render(e.node.graph, { bad = e.node }))
        f:close()
        io.stderr:write("reclfc: the graph up to the failing node is in " .. opt.dot .. "\n")
      end
      os.exit(1)
    end
    error(e, 0)
  end

  local all_ok = true
  for _, g in ipairs(graphs) do
    if opt.dot then
      -- the main entry goes to FILE, other entry points beside it as FILE-<entry>.dot
      local entry = g.name:match("%.([%w_]+)$")
      local f = assert(io.open(entry and (opt.dot:gsub("%.dot$", "") .. "-" .. entry .. ".dot") or opt.dot, "w"))
      f:write(require("compiler.dot").render(g))
      f:close()
    end
    if opt.ir then
      for _, n in ipairs(g.schedule) do
        local ins = {}
        for k, x in ipairs(n.inputs) do ins[k] = "%" .. x.id end
        print(string.format("%-9s %-48s <- %-20s %s", n.phase, require("compiler.ir").describe(n), table.concat(ins, " "), n.src))
      end
    end
    if opt.gradcheck then
      if not g.has_loss then
        print(string.format("%s: no loss output, nothing to check", g.name))
      else
        print(string.format("gradcheck %s (double, central differences)", g.name))
        local res = require("compiler.gradcheck").run(g, root_dir(), { dims = opt.dims, samples = opt.samples, tol = opt.tol })
        all_ok = all_ok and res
      end
    else
      local path = compile.write_outputs(g, opt.out)
      if not opt.quiet then
        local env = compile.reference_env(g)
        local envs = {}
        for _, s in ipairs(g.syms) do envs[#envs + 1] = s .. "=" .. env[s] end
        local bytes = 4
        print(string.format("%s: %d nodes (%d forward), arena %.1f MiB (buffers total %.1f MiB), %.2f GFLOP per step at %s",
          path, #g.schedule, g.stats.forward_nodes, g.plan.peak_elems * bytes / 2^20, g.plan.sum_elems * bytes / 2^20,
          compile.flops(g, env) / 1e9, table.concat(envs, ",")))
      end
    end
  end
  if not all_ok then io.stderr:write("reclfc: gradient check FAILED\n") os.exit(1) end
end

main(arg)
