-- The graph-building surface that graph files see: `g`. A graph file returns a function
-- `function(g, cfg) ... end` (or a table of them, one per entry point); g holds the primitive
-- ops (compiler/fn.lua), the composite ops (compiler/nn.lua) and the declarations below.
local size = require("compiler.size")
local ir = require("compiler.ir")
local fn = require("compiler.fn")
local nn = require("compiler.nn")

local M = {}

local INITS = { zeros = true, ones = true, uniform = true, normal = true }

function M.new(name, cfg)
  local graph = ir.new_graph(name)
  local F = fn.new(graph)
  local N = nn.new(F)
  local g = { graph = graph, cfg = cfg or {} }
  for k, v in pairs(F) do g[k] = v end
  for k, v in pairs(N) do g[k] = v end

  local function check_shape(shape, what)
    if type(shape) ~= "table" then ir.fail(nil, "%s: shape must be a list, got %s", what, tostring(shape)) end
    for i, d in ipairs(shape) do
      if type(d) == "number" then
        if d < 1 or d % 1 ~= 0 then ir.fail(nil, "%s: dimension %d is %s, expected a positive integer", what, i, tostring(d)) end
      elseif type(d) == "string" then
        if not graph.sym_set[d] then ir.fail(nil, "%s: dimension %d is '%s', which is not a run-time size declared with g.dim", what, i, d) end
      else
        ir.fail(nil, "%s: dimension %d is %s, expected a number or a g.dim name", what, i, tostring(d))
      end
    end
  end

  -- a run-time size (the batch): its value is given when the kernels run
  function g.dim(sym)
    graph:add_sym(sym)
    return sym
  end

  -- opt.dtype = "int32" (with opt.max: values lie in [0, max)), opt.role = "data"|"mask"|"target",
  -- opt.grad = false for inputs whose gradient is never wanted (masks, targets)
  function g.input(iname, shape, opt)
    opt = opt or {}
    check_shape(shape, "input '" .. tostring(iname) .. "'")
    if graph.input_by_name[iname] then
      ir.fail(nil, "input '%s' declared twice (first at %s)", iname, graph.input_by_name[iname].src)
    end
    local dtype = opt.dtype or "real"
    if dtype ~= "real" and dtype ~= "int32" then ir.fail(nil, "input '%s': dtype must be real or int32", iname) end
    local n = F.make("input", {}, { name = iname, shape = shape, dtype = dtype, max = opt.max,
      role = opt.role or (dtype == "int32" and "target" or "data"),
      grad = dtype == "real" and opt.grad ~= false and (opt.role or "data") == "data" })
    graph.inputs[#graph.inputs + 1] = n
    graph.input_by_name[iname] = n
    return n
  end

  -- init: "zeros" | "ones" | {"uniform", bound} | {"normal", std}; default: PyTorch's
  -- Kaiming-uniform for a weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = prod(shape[2..])
  -- decay: AdamW weight decay applies (default: true for matrices and kernels, false otherwise)
  function g.param(pname, shape, opt)
    opt = opt or {}
    check_shape(shape, "parameter '" .. tostring(pname) .. "'")
    for i, d in ipairs(shape) do
      if type(d) ~= "number" then ir.fail(nil, "parameter '%s': dimension %d is the run-time size %s; parameters have fixed shapes", pname, i, d) end
    end
    local prev = graph.param_by_name[pname]
    if prev then
      ir.fail(nil, "parameter '%s' declared twice (first at %s)", pname, prev.src)
    end
    local init, arg = opt.init, nil
    if init == nil then
      local fan_in = 1
      for i = 2, #shape do fan_in = fan_in * shape[i] end
      init, arg = "uniform", 1 / math.sqrt(fan_in)
    elseif type(init) == "table" then
      init, arg = init[1], init[2]
    end
    if not INITS[init] then
      ir.fail(nil, "parameter '%s': unknown initialiser '%s' (zeros, ones, {\"uniform\", b}, {\"normal\", std})", pname, tostring(init))
    end
    if (init == "uniform" or init == "normal") and type(arg) ~= "number" then
      ir.fail(nil, "parameter '%s': %s initialiser needs a number", pname, init)
    end
    local decay = opt.decay
    if decay == nil then decay = #shape >= 2 end
    local n = F.make("param", {}, { name = pname, shape = shape, init = init, init_arg = arg or 0, decay = decay })
    graph.params[#graph.params + 1] = n
    graph.param_by_name[pname] = n
    return n
  end

  function g.output(oname, x)
    if not fn.is_node(x) then ir.fail(nil, "output '%s' must be a tensor, got %s", tostring(oname), type(x)) end
    for _, o in ipairs(graph.outputs) do
      if o.name == oname then ir.fail(nil, "output '%s' declared twice", oname) end
    end
    graph.outputs[#graph.outputs + 1] = { name = oname, node = x, src = ir.user_source() }
    return x
  end

  -- the scalar loss of a training graph is output 0; its shape must be {} or {1}
  function g.loss(x)
    if not fn.is_node(x) then ir.fail(nil, "loss must be a tensor, got %s", type(x)) end
    if not size.eq(size.numel(x.shape), size.mono(1)) then
      ir.fail(nil, "loss must be a scalar, got shape %s", size.shape_str(x.shape))
    end
    if #graph.outputs > 0 and graph.outputs[1].name == "loss" then ir.fail(nil, "loss declared twice") end
    table.insert(graph.outputs, 1, { name = "loss", node = F.reshape(x, {}), src = ir.user_source(), is_loss = true })
    graph.has_loss = true
    return x
  end

  return g
end

-- Loads a graph file. It returns a function(g, cfg) or a table {entry = function(g, cfg)}.
-- Returns a list of {name, build} entries: the main graph is named after the file.
function M.load_file(path)
  local chunk, err = loadfile(path)
  if not chunk then error(setmetatable({ msg = err }, ir.CompileError), 0) end
  local ok, res = pcall(chunk)
  if not ok then
    if ir.is_compile_error(res) then error(res, 0) end
    error(setmetatable({ msg = tostring(res) }, ir.CompileError), 0)
  end
  local base = path:match("([^/]+)%.lua$")
  local entries = {}
  if type(res) == "function" then
    entries[1] = { name = base, build = res }
  elseif type(res) == "table" and res.graphs then
    local keys = {}
    for k in pairs(res.graphs) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      entries[#entries + 1] = { name = (k == "main") and base or (base .. "." .. k), build = res.graphs[k] }
    end
  else
    error(setmetatable({ msg = path .. ": a graph file must return function(g, cfg) or {graphs = {...}}" }, ir.CompileError), 0)
  end
  return entries, res
end

-- Builds one entry; errors inside the user's code (Lua errors too) come back with file:line.
function M.build(name, build, cfg)
  local g = M.new(name, cfg)
  local ok, err = xpcall(function() build(g, g.cfg) end, function(e)
    if ir.is_compile_error(e) then return e end
    -- a plain Lua error inside a block: keep its own file:line and add the graph line that called it
    -- name the outermost user frame (the graph file's line that called the failing block)
    local caller, level = nil, 2
    while true do
      local info = debug.getinfo(level, "Sl")
      if not info then break end
      local src = (info.source or ""):gsub("^@", ""):gsub("^%./", "")
      if src:sub(1, #ir.ROOT + 1) == ir.ROOT .. "/" then src = src:sub(#ir.ROOT + 2) end
      if src:find("compiler/dsl.lua", 1, true) and caller then break end -- M.build's call of the graph
      if info.currentline and info.currentline > 0 and not src:find("compiler/", 1, true) then
        caller = src .. ":" .. info.currentline
      end
      level = level + 1
    end
    return setmetatable({ msg = tostring(e) .. "\n  (while building graph '" .. name .. "', called from " .. (caller or "?") .. ")",
      trace = debug.traceback() }, ir.CompileError)
  end)
  if not ok then error(err, 0) end
  if #g.graph.outputs == 0 then ir.fail(name, "graph '%s' declares no outputs", name) end
  return g.graph
end

return M
