-- Reverse-mode automatic differentiation. Walks the forward nodes backwards from the loss,
-- asking each op's gradient rule (written with the same builder) for its inputs' gradients,
-- and summing contributions. The new nodes are marked phase = "backward" and carry the
-- file:line of the forward node they differentiate.
local ir = require("compiler.ir")
local ops = require("compiler.ops")
local size = require("compiler.size")

local M = {}

function M.differentiate(graph)
  local loss = graph.outputs[1]
  if not (loss and loss.is_loss) then return end
  local F = graph.F
  local nforward = #graph.nodes

  -- which nodes carry a gradient: parameters, inputs that want one, and what depends on them
  local needs = {}
  for _, n in ipairs(graph.nodes) do
    if n.op == "param" then needs[n.id] = true
    elseif n.op == "input" then needs[n.id] = n.attrs.grad
    else
      for _, x in ipairs(n.inputs) do
        if needs[x.id] and not ops[n.op].nodiff then needs[n.id] = true end
      end
      if n.op == "detach" or n.op == "onehot" or n.op == "eye" or n.op == "fill" then needs[n.id] = false end
    end
  end
  if not needs[loss.node.id] then
    ir.fail(loss.src, "the loss depends on no parameter (nor on any input that takes a gradient): nothing to train")
  end

  graph.phase = "backward"
  local grads = {}
  graph.src_override = loss.src
  grads[loss.node.id] = F.fill({}, 1)
  for i = nforward, 1, -1 do
    local n = graph.nodes[i]
    local g = grads[n.id]
    if g and needs[n.id] and not ops[n.op].leaf then
      local def = ops[n.op]
      if not def.grad then ir.fail(n, "op '%s' has no gradient rule", n.op) end
      graph.src_override = n.src
      local gs = def.grad(F, n, g)
      for k, x in ipairs(n.inputs) do
        local gx = gs[k]
        if gx and needs[x.id] then
          if not size.same_shape(gx.shape, x.shape) then
            ir.fail(n, "internal: gradient of %s has shape %s, expected %s", ir.describe(n), size.shape_str(gx.shape), size.shape_str(x.shape))
          end
          grads[x.id] = grads[x.id] and F.add(grads[x.id], gx) or gx
        end
      end
    end
  end
  graph.src_override = nil

  graph.param_grads, graph.input_grads = {}, {}
  for i, p in ipairs(graph.params) do graph.param_grads[i] = grads[p.id] end
  for i, x in ipairs(graph.inputs) do graph.input_grads[i] = x.attrs.grad and grads[x.id] or nil end
  graph.phase = "forward"
end

return M
