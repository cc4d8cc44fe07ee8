-- The kernels made by the fusion pass (compiler/passes/fuse.lua): an expression tree of
-- element-wise functions over leaf tensors, with reductions inlined either as the root (a
-- reduction with its prologue) or as sub-expressions evaluated per output element (epilogues).
-- Fused nodes exist only after differentiation: they have no gradient rule.
local size = require("compiler.size")
local loops = require("compiler.loops")
local elementwise = require("compiler.ops.elementwise")

local M = { ops = {} }

-- C of an expression tree's element-wise functions; operand_c(t) gives the C of every other node
-- (a leaf's element, an inlined reduction). Used by fused kernels and GEMM epilogues.
function M.map_expr(t, operand_c)
  if not t.fn then return operand_c(t) end
  local args = {}
  for k, a in ipairs(t.args) do args[k] = "(" .. M.map_expr(a, operand_c) .. ")" end
  return elementwise.FNS[t.fn].c(args, t.attrs)
end

M.ops.fused = {
  infer = function(n) return n.shape, "real" end,
  flops = function(n) return n.attrs.flops end,
  emit = function(n, names)
    local root = n.shape
    local dims = {}
    for d, s in ipairs(root) do dims[d] = size.of_dim(s) end
    -- operands: the output, then one per leaf, strided against the output's loops
    local operands = { { strides = loops.contiguous(root) } }
    for k, x in ipairs(n.inputs) do
      local st = {}
      local full = size.strides(x.shape)
      local off = #root - #x.shape
      for d = 1, #root do
        local sd = d - off
        if sd < 1 or x.shape[sd] == 1 then st[d] = false else st[d] = full[sd] end
      end
      operands[k + 1] = { strides = st }
    end
    -- an inlined reduction makes each output element cost its length: weigh that in the decision
    -- to go parallel, and keep simd for the reduction loops
    local work
    local function find_reductions(t)
      if t.reduce then
        local len = size.of_dim(t.len)
        if not work or (size.is_const(len) and size.is_const(work) and len.c > work.c) then work = len end
      end
      for _, a in ipairs(t.args or {}) do find_reductions(a) end
      if t.arg then find_reductions(t.arg) end
    end
    find_reductions(n.attrs.expr)
    local reduce_no = 0
    return loops.emit(dims, operands, function(idx)
      local pre = {}
      -- C for a tree; inside a reduction over `red` the leaves step along its axis by j<no>
      local function gen(t, red) -- the C of node t, inside the reduction `red` when given
        if t.leaf then
          local x = t.leaf
          local i = idx[t.k + 1]
          if red then
            local off = #red.shape - #x.shape
            local sd = red.axis - off
            if sd >= 1 and x.shape[sd] ~= 1 then
              i = i .. " + j" .. red.no .. "*" .. size.c(size.strides(x.shape)[sd])
            end
          end
          return names.inputs[t.k] .. "[" .. i .. "]"
        end
        if t.reduce then
          reduce_no = reduce_no + 1
          local r = { no = reduce_no, axis = t.axis, shape = nil }
          -- the reduced tensor's shape: the output's, with the axis at full length
          local shape = {}
          for d, s in ipairs(root) do shape[d] = s end
          shape[t.axis] = t.len
          r.shape = shape
          local v = "r" .. r.no
          local body = gen(t.arg, r)
          local init = t.reduce == "sum" and "(real)0" or "-INFINITY"
          local acc = t.reduce == "sum" and string.format("%s += %s;", v, body)
            or string.format("{ real e_ = %s; if (e_ > %s) %s = e_; }", body, v, v)
          -- `omp simd reduction` lets the compiler keep one partial result per vector lane (no
          -- -ffast-math needed): the sum's order is fixed by the build, not by the thread count
          pre[#pre + 1] = string.format("real %s = %s;\n#pragma omp simd reduction(%s:%s)\nfor (long j%d = 0; j%d < %s; j%d++) %s",
            v, init, t.reduce == "sum" and "+" or "max", v, r.no, r.no, size.c(size.of_dim(t.len)), r.no, acc)
          return v
        end
        return M.map_expr(t, function(x) return gen(x, red) end)
      end
      local value = gen(n.attrs.expr, nil)
      reduce_no = 0
      local stmt = string.format("%s[%s] = %s;", names.out, idx[1], value)
      if #pre == 0 then return stmt end
      return "{\n    " .. table.concat(pre, "\n"):gsub("\n", "\n    ") .. "\n    " .. stmt .. "\n}"
    end, nil, { work = work, inner_loops = work ~= nil })
  end,
}

return M
