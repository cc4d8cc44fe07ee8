-- Emits the nested C loops of a strided, broadcasting element-wise kernel.
-- Every op that reads and writes memory by affine indices (maps, broadcasts, permutes,
-- slices, padding, concatenation) goes through here, so merging of contiguous dimensions,
-- OpenMP and vectorisable inner loops are decided in one place.
local size = require("compiler.size")
local M = {}

-- dims: list of monomials (loop extents); operands: {name, strides = {monomial|false per dim}, base = monomial|nil}
-- false stride = broadcast (0). Returns merged dims and strides.
local function merge(dims, operands)
  -- drop extents of 1
  local keep = {}
  for d = 1, #dims do
    if not (size.is_const(dims[d]) and dims[d].c == 1) then keep[#keep + 1] = d end
  end
  local md, ms = {}, {}
  for k = 1, #operands do ms[k] = {} end
  for _, d in ipairs(keep) do
    local can = #md > 0
    if can then
      for k, op in ipairs(operands) do
        local outer, inner = ms[k][#md], op.strides[d]
        if (outer == false) ~= (inner == false) then can = false break end
        if outer ~= false and not size.eq(outer, size.mul(inner, dims[d])) then can = false break end
      end
    end
    if can then
      md[#md] = size.mul(md[#md], dims[d])
      for k, op in ipairs(operands) do
        ms[k][#md] = op.strides[d] -- inner stride survives
      end
    else
      md[#md + 1] = dims[d]
      for k, op in ipairs(operands) do ms[k][#md] = op.strides[d] end
    end
  end
  return md, ms
end

-- body(idx) returns the C statement for one element, given idx[k] = index expression of operand k.
-- opts.work: the work per element (a monomial, e.g. the length of an inlined reduction), so the
-- decision to run in parallel weighs the whole kernel; opts.inner_loops: the body holds loops of
-- its own, so the outer loop is not marked simd (the inner ones are).
function M.emit(dims, operands, body, indent, opts)
  indent = indent or "    "
  opts = opts or {}
  local md, ms = merge(dims, operands)
  local idx = {}
  for k, op in ipairs(operands) do
    local terms = {}
    if op.base and not (size.is_const(op.base) and op.base.c == 0) then terms[1] = size.c(op.base) end
    for d = 1, #md do
      local st = ms[k][d]
      if st ~= false then
        if size.is_const(st) and st.c == 1 then terms[#terms + 1] = "i" .. (d - 1)
        else terms[#terms + 1] = "i" .. (d - 1) .. "*" .. size.c(st) end
      end
    end
    idx[k] = #terms == 0 and "0" or table.concat(terms, " + ")
  end
  local lines = {}
  if #md == 0 then
    lines[1] = indent .. body(idx):gsub("\n", "\n" .. indent)
    return table.concat(lines, "\n")
  end
  local total = opts.work or size.mono(1)
  for d = 1, #md do total = size.mul(total, md[d]) end
  local par = string.format("if((long)(%s) > 32768)", size.c(total))
  if #md == 1 and opts.inner_loops then
    lines[#lines + 1] = indent .. "#pragma omp parallel for " .. par
  elseif #md == 1 then
    lines[#lines + 1] = indent .. "#pragma omp parallel for simd " .. par
  else
    lines[#lines + 1] = indent .. string.format("#pragma omp parallel for collapse(%d) %s", #md - 1, par)
  end
  local ind = indent
  for d = 1, #md do
    lines[#lines + 1] = string.format("%sfor (long i%d = 0; i%d < %s; i%d++)%s", ind, d - 1, d - 1,
      size.c(md[d]), d - 1, d == #md and "" or "")
    ind = ind .. "    "
  end
  lines[#lines + 1] = ind .. body(idx):gsub("\n", "\n" .. ind)
  return table.concat(lines, "\n")
end

-- strides of operand `shape` read while looping over `out_shape`, numpy right-aligned broadcasting
function M.broadcast_strides(shape, out_shape)
  local st = size.strides(shape)
  local res, off = {}, #out_shape - #shape
  for d = 1, #out_shape do
    local sd = d - off
    if sd < 1 then res[d] = false
    elseif shape[sd] == 1 and out_shape[d] ~= 1 then res[d] = false
    else res[d] = st[sd] end
  end
  return res
end

function M.contiguous(shape) return size.strides(shape) end

return M
