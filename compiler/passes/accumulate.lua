-- Sums of batched products: sum over a batch axis of a batched matrix product, such as the
-- gradient of an operand broadcast over that axis (dV = sum over reports of each pair's product),
-- becomes one kernel whose GEMMs accumulate into the output block (beta = 1 after the first).
-- The batched product itself ([T, B, R, d] for the local matching) is never stored, and its sum
-- needs no pass of its own. The terms are added in the order of the summed axis, whatever the
-- thread count.
--
-- A sum is folded into its product when the product is its only user, is not an output or a
-- gradient, has no epilogue, is in the same pass (forward or backward), and the summed axis is one
-- of the product's batch axes.
local simplify = require("compiler.passes.simplify")

local M = {}

function M.run(graph)
  local uses, is_root = simplify.uses(graph)
  local gone, count = {}, 0
  for _, n in ipairs(graph.schedule) do
    local p = n.inputs[1]
    if n.op == "reduce" and n.attrs.kind == "sum" and p.op == "matmul" and not p.attrs.epilogue
      and not p.attrs.sum_axis and uses[p.id] == 1 and not is_root[p.id] and p.phase == n.phase
      and n.attrs.axis <= #p.shape - 2 then
      local attrs = {}
      for k, v in pairs(p.attrs) do attrs[k] = v end
      attrs.sum_axis = n.attrs.axis
      attrs.product_batch = {}
      for d = 1, #p.shape - 2 do attrs.product_batch[d] = p.shape[d] end
      -- the sum becomes the product's kernel: same identity, so its users need no rewiring
      n.summed_product = p
      n.op = "matmul"
      n.inputs = { p.inputs[1], p.inputs[2] }
      n.attrs = attrs
      gone[p.id] = true
      count = count + 1
    end
  end
  simplify.drop(graph, gone)
  graph.stats_accumulated = count
  return count
end

return M
