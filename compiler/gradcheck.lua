-- Gradient checks: builds a graph's generated C in double, loads it through LuaJIT's FFI, and
-- compares every parameter and input gradient of output 0 with central finite differences.
-- The numeric gradient is the fourth-order central difference
--   (8 (f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / 12h,  h = 1e-5 (small: ReLU kinks),
-- whose truncation error (h^4) is far below the 1e-6 we ask for, where the plain two-point
-- difference's (h^2) is not for a deep model with small temperatures.
-- Error of a tensor: the largest |analytic - numeric| / max(|analytic|, |numeric|, floor). Finite
-- differences resolve a gradient only to about 2.2e-16 |loss| / h, so to check 1e-6 relative
-- accuracy an entry must be 1e6 times larger: floor = 2.2e-10 max(|loss|, 1) / h.
-- Checks run on one thread: the tiny graphs are dominated by thread start-up otherwise.
local ffi = require("ffi")
local emit_c = require("compiler.emit_c")
local size = require("compiler.size")

local M = { loaded = {} }

ffi.cdef [[
typedef struct { const char *name; int dtype; int ndim; int shape[6]; int needs_grad; int int_max; const char *role; } gc_tensor_desc;
typedef struct { const char *name; int ndim; int shape[6]; size_t offset; size_t numel; int init; double init_arg; int decay; const char *source; } gc_param_desc;
typedef struct {
  const char *name; int n_syms; const char *const *sym_names; int n_params; const gc_param_desc *params;
  size_t n_param_elems; int n_inputs; const gc_tensor_desc *inputs; int n_outputs; const gc_tensor_desc *outputs;
  const char *config_json;
  size_t (*arena_bytes)(const long *dims);
  void (*forward)(void *arena, const double *params, void *const *inputs, const long *dims);
  void (*backward)(void *arena, double *grads, const double *params, void *const *inputs, double *const *input_grads, const long *dims);
  const double *(*output)(const void *arena, int k, const long *dims);
} gc_graph;
void *malloc(size_t); void free(void *);
int setenv(const char *, const char *, int);
]]

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

ffi.C.setenv("OMP_NUM_THREADS", "1", 1)
ffi.C.setenv("OPENBLAS_NUM_THREADS", "1", 1)

-- compiles generated C of `graph` into a shared library built for double; returns the module
function M.load(graph, root, workdir)
  workdir = workdir or os.tmpname() .. ".d"
  sh("mkdir -p " .. workdir)
  local c, h = emit_c.emit(graph)
  local cname = emit_c.c_name(graph.name)
  local f = assert(io.open(workdir .. "/" .. cname .. ".c", "wb")); f:write(c); f:close()
  f = assert(io.open(workdir .. "/" .. cname .. ".h", "wb")); f:write(h); f:close()
  local so = workdir .. "/" .. cname .. ".so"
  local cc = os.getenv("CC") or "cc"
  local cmd = string.format("%s -std=c11 -O1 -fopenmp -shared -fPIC -DREAL_DOUBLE -Wall -Wextra -Werror -I%s/runtime -I%s " ..
    "-I/usr/include/x86_64-linux-gnu/openblas-openmp -o %s %s/%s.c -lopenblas -lm 2> %s/cc.log",
    cc, root, workdir, so, workdir, cname, workdir)
  if not sh(cmd) then
    local log = io.open(workdir .. "/cc.log"):read("*a")
    error("gradcheck: the generated C of " .. graph.name .. " did not compile:\n" .. log, 0)
  end
  local lib = ffi.load(so)
  M.loaded[#M.loaded + 1] = lib -- a collected clib would unload the code G points into
  ffi.cdef(string.format("extern const gc_graph reclf_graph_%s;", cname))
  return lib["reclf_graph_" .. cname], lib
end

local function numel_of(desc, dims)
  local n = 1
  for d = 0, desc.ndim - 1 do
    local s = desc.shape[d]
    n = n * (s >= 0 and s or tonumber(dims[-1 - s]))
  end
  return n
end

-- a small deterministic generator so checks are reproducible
local function lcg(seed)
  local s = seed
  return function()
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  end
end

-- opts.loss_only: return the loss of the first forward pass and stop (compares two builds)
-- opts: dims = {B = 3, ...}, samples = entries checked per tensor (all when the tensor is smaller),
-- eps, tol, seed, print = function(line)
function M.run(graph, root, opts)
  opts = opts or {}
  local eps, tol = opts.eps or 1e-5, opts.tol or 1e-6
  local samples = opts.samples or 40
  local say = opts.print or print
  local G = M.load(graph, root, opts.workdir)
  local rnd = lcg(opts.seed or 12345)
  local dims = ffi.new("long[?]", math.max(1, G.n_syms))
  for i = 0, G.n_syms - 1 do
    local nm = ffi.string(G.sym_names[i])
    dims[i] = (opts.dims or {})[nm] or 3
  end
  -- parameters: every one at random (SPEC 8c: a zero-initialised matrix would hide gradients)
  local np = tonumber(G.n_param_elems)
  local P = ffi.new("double[?]", math.max(1, np))
  for i = 0, np - 1 do P[i] = (rnd() * 2 - 1) * 0.5 end
  -- inputs by role
  local inputs = ffi.new("void *[?]", math.max(1, G.n_inputs))
  local keep, in_n = {}, {}
  for k = 0, G.n_inputs - 1 do
    local d = G.inputs[k]
    local n = numel_of(d, dims)
    in_n[k] = n
    local role = ffi.string(d.role)
    if d.dtype == 1 then
      local buf = ffi.new("int32_t[?]", n)
      for i = 0, n - 1 do buf[i] = math.floor(rnd() * math.max(1, d.int_max)) end
      keep[#keep + 1] = buf
      inputs[k] = buf
    else
      local buf = ffi.new("double[?]", n)
      for i = 0, n - 1 do
        if role == "mask" then buf[i] = (rnd() < 0.75) and 1 or 0
        elseif role == "target" then buf[i] = (rnd() < 0.5) and 1 or 0
        else buf[i] = rnd() * 2 - 1 end
      end
      keep[#keep + 1] = buf
      inputs[k] = buf
    end
  end
  local arena = ffi.C.malloc(G.arena_bytes(dims))
  local function loss()
    G.forward(arena, P, inputs, dims)
    return G.output(arena, 0, dims)[0]
  end
  local grads = ffi.new("double[?]", math.max(1, np))
  local igrads = ffi.new("double *[?]", math.max(1, G.n_inputs))
  for k = 0, G.n_inputs - 1 do
    if G.inputs[k].needs_grad ~= 0 then
      local b = ffi.new("double[?]", in_n[k]); keep[#keep + 1] = b; igrads[k] = b
    end
  end
  local L0 = loss()
  if opts.loss_only then ffi.C.free(arena) return L0 end
  G.backward(arena, grads, P, inputs, igrads, dims)
  if L0 ~= L0 then say(string.format("%-40s loss is NaN  FAIL", graph.name)) ffi.C.free(arena) return false end

  local function check(name, buf, analytic, n)
    local picks = {}
    if n <= samples then for i = 0, n - 1 do picks[#picks + 1] = i end
    else for _ = 1, samples do picks[#picks + 1] = math.floor(rnd() * n) end end
    local num = {}
    local maxnum = 0
    for j, i in ipairs(picks) do
      local old = buf[i]
      -- a ReLU kink or a max switching inside [x-2h, x+2h] makes the stencil meaningless: the
      -- estimates at h and h/10 then disagree, and we move to the smaller step
      local function stencil(h)
        buf[i] = old + h; local p1 = loss()
        buf[i] = old - h; local m1 = loss()
        buf[i] = old + 2 * h; local p2 = loss()
        buf[i] = old - 2 * h; local m2 = loss()
        buf[i] = old
        return (8 * (p1 - m1) - (p2 - m2)) / (12 * h)
      end
      local h = eps
      local est, finer = stencil(h), stencil(h / 10)
      local noise = 2.2e-12 * math.max(math.abs(L0), 1) / h -- rounding at h/10, times 1e3
      for _ = 1, 2 do
        if math.abs(est - finer) <= math.max(1e-7 * math.max(math.abs(est), math.abs(finer)), noise) then break end
        h = h / 10
        est, finer = finer, stencil(h / 10)
      end
      num[j] = est
      maxnum = math.max(maxnum, math.abs(num[j]), math.abs(analytic[i]))
    end
    local floor = 2.2e-10 * math.max(math.abs(L0), 1) / eps
    local worst = 0
    for j, i in ipairs(picks) do
      local a, b = analytic[i], num[j]
      local e = math.abs(a - b) / math.max(math.abs(a), math.abs(b), floor)
      if e ~= e then e = math.huge end
      worst = math.max(worst, e)
    end
    local ok = worst <= tol
    say(string.format("  %-44s %7d  checked %4d  max rel err %.2e  %s", name, n, #picks, worst, ok and "ok" or "FAIL"))
    return ok
  end
  local all = true
  for k = 0, G.n_params - 1 do
    local p = G.params[k]
    local off = tonumber(p.offset)
    all = check(ffi.string(p.name), P + off, grads + off, tonumber(p.numel)) and all
  end
  for k = 0, G.n_inputs - 1 do
    if G.inputs[k].needs_grad ~= 0 then
      all = check("input " .. ffi.string(G.inputs[k].name), ffi.cast("double *", inputs[k]), igrads[k], in_n[k]) and all
    end
  end
  ffi.C.free(arena)
  return all
end

return M
