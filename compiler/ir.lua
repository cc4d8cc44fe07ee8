-- The IR: a graph is a list of nodes in SSA form, in creation order (a valid schedule).
-- Every node keeps the file:line of the graph code that made it, so errors and generated
-- kernels point back to the user's own line.
local size = require("compiler.size")

local M = {}

-- the project folder, so that recorded graph lines are relative and the output reproducible
local ROOT = (debug.getinfo(1, "S").source:sub(2):match("^(.*)/compiler/ir%.lua$") or ".")
M.ROOT = ROOT

-- The first stack frame outside the compiler is the user's graph code.
local function user_source(level)
  level = level or 3
  while true do
    local info = debug.getinfo(level, "Sl")
    if not info then return "?" end
    local src = info.source or "?"
    if src:sub(1, 1) == "@" then src = src:sub(2) end
    local in_compiler = src:find("compiler/", 1, true) and not src:find("tests/", 1, true)
    if not in_compiler and info.currentline and info.currentline > 0 then
      src = src:gsub("^%./", "")
      if src:sub(1, #ROOT + 1) == ROOT .. "/" then src = src:sub(#ROOT + 2) end
      return src .. ":" .. info.currentline
    end
    level = level + 1
  end
end
M.user_source = user_source

-- Compile errors are raised as tables so the command line can tell them from Lua bugs.
local CompileError = {}
CompileError.__index = CompileError
CompileError.__tostring = function(e) return e.msg end
M.CompileError = CompileError

function M.fail(where, fmt, ...)
  local msg = string.format(fmt, ...)
  local src = type(where) == "table" and where.src or where or user_source()
  error(setmetatable({ msg = src .. ": " .. msg, node = type(where) == "table" and where or nil }, CompileError), 0)
end

function M.is_compile_error(e) return getmetatable(e) == CompileError end

local Graph = {}
Graph.__index = Graph

function M.new_graph(name)
  return setmetatable({
    name = name,
    nodes = {},        -- all nodes, creation order
    params = {},       -- param nodes in declaration order
    param_by_name = {},
    inputs = {},       -- input nodes in declaration order
    input_by_name = {},
    outputs = {},      -- {name=, node=}
    syms = {},         -- run-time size names in declaration order
    sym_set = {},
    phase = "forward",
  }, Graph)
end

function Graph:add_sym(name)
  if not self.sym_set[name] then
    self.sym_set[name] = true
    self.syms[#self.syms + 1] = name
  end
end

-- node fields: id, op, inputs, shape, dtype ("real"|"int32"), attrs, src, phase
function Graph:node(op, inputs, shape, attrs, dtype, src)
  local n = {
    id = #self.nodes + 1,
    op = op,
    inputs = inputs or {},
    shape = shape,
    attrs = attrs or {},
    dtype = dtype or "real",
    src = src or self.src_override or user_source(),
    phase = self.phase,
    graph = self,
  }
  self.nodes[#self.nodes + 1] = n
  return n
end

function M.describe(n)
  local what = n.op
  if n.op == "map" then what = "map:" .. n.attrs.fn end
  if n.op == "fused" then what = "fused:" .. n.attrs.name end
  if n.op == "matmul" and n.attrs.epilogue then what = "matmul+" .. n.attrs.epilogue.name end
  if n.op == "group_norm" and n.attrs.relu then what = "group_norm+relu" end
  if (n.op == "group_norm_sums" or n.op == "group_norm_grad_x") and n.attrs.relu then what = "relu_grad+" .. n.op end
  if n.attrs.name and n.op ~= "fused" then what = what .. " '" .. n.attrs.name .. "'" end
  return string.format("%%%d %s %s", n.id, what, n.shape and size.shape_str(n.shape) or "[?]")
end

M.Graph = Graph
return M
