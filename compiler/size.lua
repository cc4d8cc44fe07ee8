-- Sizes that may depend on run-time dimensions (the batch sizes).
-- A shape entry is a positive integer or the name of a run-time size ("B", "T").
-- A product of entries is a monomial {c = constant, s = {B = 1, T = 1}}: every buffer size and
-- stride of a graph is one, so the planner and the emitter can reason about them exactly.
local M = {}

local function is_sym(d) return type(d) == "string" end
M.is_sym = is_sym

function M.mono(c, s)
  local out = { c = c or 1, s = {} }
  for k, v in pairs(s or {}) do if v ~= 0 then out.s[k] = v end end
  return out
end

-- a string dim is a run-time size ("B") or a product folded by a reshape ("39*T")
function M.of_dim(d)
  if is_sym(d) then
    local m = M.mono(1)
    for f in d:gmatch("[^*]+") do
      local k = tonumber(f)
      if k then m.c = m.c * k else m.s[f] = (m.s[f] or 0) + 1 end
    end
    return m
  end
  return M.mono(d)
end

function M.mul(a, b)
  local s = {}
  for k, v in pairs(a.s) do s[k] = v end
  for k, v in pairs(b.s) do s[k] = (s[k] or 0) + v end
  return M.mono(a.c * b.c, s)
end

function M.prod(dims, from, to)
  local m = M.mono(1)
  for i = from or 1, to or #dims do m = M.mul(m, M.of_dim(dims[i])) end
  return m
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end
M.sorted_keys = sorted_keys

-- "B^1*T^1" style key of the symbolic part, "" for a constant
function M.signature(m)
  local parts = {}
  for _, k in ipairs(sorted_keys(m.s)) do parts[#parts + 1] = k .. "^" .. m.s[k] end
  return table.concat(parts, "*")
end

function M.eq(a, b) return a.c == b.c and M.signature(a) == M.signature(b) end
function M.is_const(m) return next(m.s) == nil end

-- value of the monomial for concrete run-time sizes, e.g. {B = 32, T = 32}
function M.eval(m, env)
  local v = m.c
  for k, e in pairs(m.s) do
    local x = env[k] or error("no value for run-time size " .. k)
    v = v * x ^ e
  end
  return v
end

-- C expression; run-time sizes are C variables of the same name (long)
function M.c(m)
  local parts = {}
  if m.c ~= 1 or next(m.s) == nil then parts[1] = string.format("%d", m.c) end
  for _, k in ipairs(sorted_keys(m.s)) do
    for _ = 1, m.s[k] do parts[#parts + 1] = k end
  end
  return table.concat(parts, "*")
end

-- the shape entry for a monomial: a number when constant, else its canonical string
function M.dim_of(m)
  if M.is_const(m) then return m.c end
  return M.c(m)
end

function M.dim_str(d) return tostring(d) end
function M.shape_str(shape)
  local p = {}
  for i, d in ipairs(shape) do p[i] = tostring(d) end
  return "[" .. table.concat(p, ",") .. "]"
end

function M.same_dim(a, b) return a == b end
function M.same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

function M.numel(shape) return M.prod(shape) end

-- contiguous strides (monomials) of a shape
function M.strides(shape)
  local st, acc = {}, M.mono(1)
  for i = #shape, 1, -1 do
    st[i] = acc
    acc = M.mul(acc, M.of_dim(shape[i]))
  end
  return st
end

return M
