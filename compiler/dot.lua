-- A Graphviz picture of a compiled graph: one box per node (op, shape, graph line), edges
-- labelled with shapes, backward nodes shaded, an optional failing node marked in red.
local size = require("compiler.size")
local ir = require("compiler.ir")
local M = {}

-- a DOT string: quotes escaped, "\\n" kept as DOT's line break
local function q(str) return '"' .. tostring(str):gsub('"', '\\"') .. '"' end

function M.render(graph, opt)
  opt = opt or {}
  local lines = { "digraph " .. q(graph.name) .. " {", "  rankdir=TB; node [shape=box, fontname=monospace, fontsize=10];" }
  local nodes = graph.schedule or graph.nodes
  for _, n in ipairs(nodes) do
    local label = ir.describe(n) .. "\\n" .. (n.src or "")
    local style = n.phase == "backward" and ", style=filled, fillcolor=\"#e8e8f4\"" or ""
    if opt.bad and opt.bad.id == n.id then style = ", color=red, penwidth=3" end
    lines[#lines + 1] = string.format("  n%d [label=%s%s];", n.id, q(label), style)
    for _, x in ipairs(n.inputs) do
      lines[#lines + 1] = string.format("  n%d -> n%d [label=%s];", x.id, n.id, q(x.shape and size.shape_str(x.shape) or "?"))
    end
  end
  lines[#lines + 1] = "}"
  return table.concat(lines, "\n") .. "\n"
end

return M
