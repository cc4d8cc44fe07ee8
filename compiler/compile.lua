-- The pipeline: load the graph file, build each entry, differentiate, simplify, plan, emit.
local ir = require("compiler.ir")
local dsl = require("compiler.dsl")
local autodiff = require("compiler.autodiff")
local simplify = require("compiler.passes.simplify")
local plan = require("compiler.passes.plan")
local emit_c = require("compiler.emit_c")
local size = require("compiler.size")
local fn = require("compiler.fn")

local M = {}

-- outputs must live in the arena (runtime reads them from there): copy leaves and views of leaves
local function materialise_outputs(graph)
  for _, o in ipairs(graph.outputs) do
    local r = o.node
    while r.op == "reshape" or r.op == "detach" do r = r.inputs[1] end
    if r.op == "input" or r.op == "param" then
      graph.src_override = o.src
      o.node = graph.F.map("id", { o.node }, { out_shape = o.node.shape })
      graph.src_override = nil
    end
  end
end

-- reference sizes for reports: cfg.reference or 32 for every run-time size
local function reference_env(graph)
  local env = {}
  for _, s in ipairs(graph.syms) do env[s] = (graph.cfg.reference or {})[s] or 32 end
  return env
end
M.reference_env = reference_env

-- opt.optimize = false keeps the plain reference form (bin/reclfc --no-fuse)
function M.compile_entry(path, name, build, cfg, opt)
  opt = opt or {}
  local graph = dsl.build(name, build, cfg)
  if opt.optimize ~= false then require("compiler.passes.reassociate").run(graph) end
  local root = require("compiler.ir").ROOT
  if path:sub(1, #root + 1) == root .. "/" then path = path:sub(#root + 2) end
  graph.path = path:gsub("^%./", "")
  graph.cfg = cfg or {}
  materialise_outputs(graph)
  local nforward = #graph.nodes
  autodiff.differentiate(graph)
  simplify.run(graph)
  if opt.optimize ~= false then
    require("compiler.passes.fuse").run(graph)
    require("compiler.passes.accumulate").run(graph)
    require("compiler.passes.epilogue").run(graph)
  end
  plan.run(graph, reference_env(graph))
  graph.stats = { forward_nodes = nforward, nodes = #graph.schedule }
  return graph
end

function M.compile_file(path, cfg, opt)
  local entries, mod = dsl.load_file(path)
  local base_cfg = {}
  if type(mod) == "table" and mod.defaults then for k, v in pairs(mod.defaults) do base_cfg[k] = v end end
  if type(mod) == "table" and mod.defaults == nil and type(mod.config) == "table" then
    for k, v in pairs(mod.config) do base_cfg[k] = v end
  end
  if cfg and cfg.preset then
    local preset = type(mod) == "table" and mod.presets and mod.presets[cfg.preset]
    if not preset then error(setmetatable({ msg = path .. ": no preset named '" .. tostring(cfg.preset) .. "'" }, require("compiler.ir").CompileError), 0) end
    for k, v in pairs(preset) do base_cfg[k] = v end
  end
  for k, v in pairs(cfg or {}) do if k ~= "preset" then base_cfg[k] = v end end
  local graphs = {}
  for _, e in ipairs(entries) do graphs[#graphs + 1] = M.compile_entry(path, e.name, e.build, base_cfg, opt) end
  return graphs
end

-- FLOPs per kernel at reference sizes
function M.flops(graph, env)
  local ops = require("compiler.ops")
  local total = 0
  for _, n in ipairs(graph.schedule) do
    local def = ops[n.op]
    if def.flops then total = total + size.eval(def.flops(n), env) end
  end
  return total
end

function M.write_outputs(graph, dir)
  local c, h = emit_c.emit(graph)
  local cname = emit_c.c_name(graph.name)
  os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")
  local function write(p, s)
    local tmp = p .. ".tmp"
    local f = assert(io.open(tmp, "wb"))
    f:write(s)
    f:close()
    assert(os.rename(tmp, p))
  end
  write(dir .. "/" .. cname .. ".c", c)
  write(dir .. "/" .. cname .. ".h", h)
  return dir .. "/" .. cname .. ".c"
end

M.is_compile_error = ir.is_compile_error
return M
