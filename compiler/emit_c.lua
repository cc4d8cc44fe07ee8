-- Emits one C file and header per graph: the kernels (one static function per distinct
-- kernel, each with a comment naming its nodes and graph lines), forward() and backward()
-- calling them in schedule order, and the ABI tables of runtime/graph_abi.h.
local size = require("compiler.size")
local ops = require("compiler.ops")
local plan = require("compiler.passes.plan")
local ir = require("compiler.ir")

local M = {}

function M.c_name(name) return (name:gsub("[^%w_]", "_")) end

local function json_value(v)
  local t = type(v)
  if t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    if #keys > 0 and #v == #keys then
      local p = {}
      for i, x in ipairs(v) do p[i] = json_value(x) end
      return "[" .. table.concat(p, ",") .. "]"
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local p = {}
    for _, k in ipairs(keys) do p[#p + 1] = string.format("%q:%s", tostring(k), json_value(v[k])) end
    return "{" .. table.concat(p, ",") .. "}"
  elseif t == "number" then
    if v % 1 == 0 and math.abs(v) < 2^53 then return string.format("%d", v) end
    return string.format("%.17g", v)
  elseif t == "boolean" then return tostring(v)
  end
  return string.format("%q", tostring(v))
end
M.json_value = json_value

local function c_string(s) return '"' .. s:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"' end

local function shape_init(graph, shape)
  local p = {}
  for i, d in ipairs(shape) do
    if type(d) == "number" then p[i] = tostring(d)
    else
      local k
      for j, s in ipairs(graph.syms) do if s == d then k = j end end
      if not k then ir.fail(nil, "internal: dimension %s of an input or output is not a single run-time size", d) end
      p[i] = tostring(-k) -- -1-(k-1)
    end
  end
  if #p == 0 then return "{0}" end
  return "{" .. table.concat(p, ", ") .. "}"
end

local function uses_sym(body, s) return body:find("%f[%w_]" .. s .. "%f[^%w_]") ~= nil end

-- the kernel's name after its node id: the op, the map's function, the fused chain
local function kernel_kind(n)
  if n.op == "map" then return n.attrs.fn end
  if n.op == "reduce" then return n.attrs.kind end
  if n.op == "fused" then return "fused_" .. n.attrs.name end
  if n.op == "matmul" and n.attrs.epilogue then return "matmul_" .. n.attrs.epilogue.name end
  return n.op
end

function M.emit(graph, opt)
  opt = opt or {}
  local cname = M.c_name(graph.name)
  local out = {}
  local function w(s) out[#out + 1] = s end

  -- parameter offsets
  local poff, total = {}, 0
  for i, p in ipairs(graph.params) do
    poff[p.id] = total
    total = total + size.numel(p.shape).c
  end
  local input_index = {}
  for i, x in ipairs(graph.inputs) do input_index[x.id] = i - 1 end

  local function ptr(n, want_const)
    local r = graph.root[n.id]
    if r.op == "param" then return "(real *)P + " .. poff[r.id] end
    if r.op == "input" then
      local ty = r.dtype == "int32" and "int32_t" or "real"
      return string.format("(%s *)inputs[%d]", ty, input_index[r.id])
    end
    return "A + " .. plan.offset_c(graph, n)
  end

  -- kernels, deduplicated by text
  local kernels, kernel_by_key, calls, sites = {}, {}, { forward = {}, backward = {} }, {}
  for _, n in ipairs(graph.schedule) do
    local def = ops[n.op]
    if not def.leaf and not def.alias then
      if not def.emit then ir.fail(n, "op '%s' cannot be lowered to C", n.op) end
      local names = { out = "out", inputs = {} }
      for k = 1, #n.inputs do names.inputs[k] = "in" .. (k - 1) end
      local body = def.emit(n, names)
      local params = { "real *restrict out" }
      for k, x in ipairs(n.inputs) do
        local ty = x.dtype == "int32" and "const int32_t" or "const real"
        params[#params + 1] = string.format("%s *restrict in%d", ty, k - 1)
      end
      local syms = {}
      for _, s in ipairs(graph.syms) do
        if uses_sym(body, s) then syms[#syms + 1] = s; params[#params + 1] = "long " .. s end
      end
      local sig = table.concat(params, ", ")
      local key = sig .. "\n" .. body
      local k = kernel_by_key[key]
      if not k then
        k = { name = string.format("k%d_%s", n.id, kernel_kind(n)), sig = sig, body = body, uses = {} }
        kernels[#kernels + 1] = k
        kernel_by_key[key] = k
      end
      k.uses[#k.uses + 1] = n
      local args = { ptr(n) }
      for _, x in ipairs(n.inputs) do args[#args + 1] = ptr(x) end
      for _, s in ipairs(syms) do args[#args + 1] = s end
      -- bytes moved: every operand read once and the result written once
      local bytes = { size.numel(n.shape) }
      for _, x in ipairs(n.inputs) do bytes[#bytes + 1] = size.numel(x.shape) end
      local bterms = {}
      for i, b in ipairs(bytes) do bterms[i] = "(double)" .. size.c(b) end
      local flops = def.flops and ("(double)" .. size.c(def.flops(n))) or "0"
      sites[#sites + 1] = { kernel = k.name, node = ir.describe(n), src = n.src, backward = n.phase == "backward" }
      table.insert(calls[n.phase], string.format("    CALL(%d, %s, sizeof(real)*(%s), %s(%s)); /* %s  %s */", #sites - 1,
        flops, table.concat(bterms, " + "), k.name, table.concat(args, ", "), ir.describe(n), n.src))
    end
  end

  w(string.format("/* %s.c: generated by reclfc from %s. Do not edit: change the graph and run `make generate`. */", cname, graph.path or "?"))
  w("#include <math.h>\n#include <stdint.h>\n#include <string.h>\n#include <cblas.h>\n#include \"graph_abi.h\"")
  w("#include \"" .. cname .. ".h\"\n")
  w("#ifdef REAL_DOUBLE\n#define GEMM cblas_dgemm\n#else\n#define GEMM cblas_sgemm\n#endif")
  w("#include <tgmath.h>")
  w("#include \"kernel_math.h\" /* exp_real, gelu_tanh, gelu_tanh_grad */\n")
  for _, k in ipairs(kernels) do
    local lines = {}
    for i, n in ipairs(k.uses) do
      if i > 6 then lines[#lines + 1] = string.format(" *   ... and %d more", #k.uses - 6) break end
      lines[#lines + 1] = string.format(" *   %s %s  %s", ir.describe(n), n.phase == "backward" and "(backward)" or "", n.src)
      if n.epilogue_of and i == 1 then
        local p = n.epilogue_of.product
        lines[#lines + 1] = string.format(" *     + %s  %s (the product; the rest is its epilogue)", ir.describe(p), p.src)
      end
      if n.fused_from and i == 1 then
        for _, c in ipairs(n.fused_from.covered) do
          lines[#lines + 1] = string.format(" *     + %s  %s", ir.describe(c), c.src)
        end
      end
    end
    w("/* " .. k.name .. ":\n" .. table.concat(lines, "\n") .. " */")
    w(string.format("static void %s(%s) {\n%s\n}\n", k.name, k.sig, k.body))
  end

  -- profiling: with -DRECLF_PROFILE every call is timed into reclf_profile_<graph>
  w("#ifdef RECLF_PROFILE\n#include \"profile.h\"")
  w(string.format("static reclf_prof_entry prof[%d] = {", math.max(1, #sites)))
  for _, st in ipairs(sites) do
    w(string.format("    {%s, %s, %s, %d, 0, 0, 0, 0},", c_string(st.kernel), c_string(st.node), c_string(st.src), st.backward and 1 or 0))
  end
  if #sites == 0 then w("    {0, 0, 0, 0, 0, 0, 0, 0},") end
  w("};")
  w(string.format("const reclf_prof_table reclf_profile_%s = {%d, prof};", cname, #sites))
  w("#define CALL(i, fl, by, call) do { double t0_ = reclf_prof_now(); call; prof[i].seconds += reclf_prof_now() - t0_; \\")
  w("    prof[i].calls++; prof[i].flops += (fl); prof[i].bytes += (double)(by); } while (0)")
  w("#else\n#define CALL(i, fl, by, call) call\n#endif\n")

  local function sym_decls()
    local p = {}
    for i, s in ipairs(graph.syms) do p[#p + 1] = string.format("    const long %s = dims[%d]; (void)%s;", s, i - 1, s) end
    if #p == 0 then p[1] = "    (void)dims;" end
    return table.concat(p, "\n")
  end

  w(string.format("static size_t arena_bytes(const long *dims) {\n%s\n    return sizeof(real) * (size_t)(%s);\n}\n",
    sym_decls(), plan.terms_c(graph.plan.total_terms)))

  w("static void forward(void *arena, const real *P, void *const *inputs, const long *dims) {")
  w(sym_decls())
  w("    real *A = arena; (void)A; (void)P; (void)inputs;")
  for _, c in ipairs(calls.forward) do w(c) end
  w("}\n")

  w("static void backward(void *arena, real *grads, const real *P, void *const *inputs, real *const *input_grads, const long *dims) {")
  w(sym_decls())
  w("    real *A = arena; (void)A; (void)P; (void)inputs; (void)grads; (void)input_grads;")
  for _, c in ipairs(calls.backward) do w(c) end
  for i, p in ipairs(graph.params) do
    local g = graph.param_grads and graph.param_grads[i]
    local nel = size.numel(p.shape).c
    if g then
      w(string.format("    memcpy(grads + %d, %s, sizeof(real)*%d); /* d loss / d %s */", poff[p.id], ptr(g), nel, p.attrs.name))
    else
      w(string.format("    memset(grads + %d, 0, sizeof(real)*%d); /* %s: the loss does not depend on it */", poff[p.id], nel, p.attrs.name))
    end
  end
  for i, x in ipairs(graph.inputs) do
    local g = graph.input_grads and graph.input_grads[i]
    if g then
      w(string.format("    if (input_grads && input_grads[%d]) memcpy(input_grads[%d], %s, sizeof(real)*(size_t)(%s));",
        i - 1, i - 1, ptr(g), size.c(size.numel(x.shape))))
    end
  end
  w("}\n")

  w("static const real *output(const void *arena, int k, const long *dims) {")
  w(sym_decls())
  w("    const real *A = arena;\n    switch (k) {")
  for i, o in ipairs(graph.outputs) do
    w(string.format("    case %d: return A + %s; /* %s */", i - 1, plan.offset_c(graph, o.node), o.name))
  end
  w("    default: return 0;\n    }\n}\n")

  -- ABI tables
  local syms = {}
  for i, s in ipairs(graph.syms) do syms[i] = c_string(s) end
  w(string.format("static const char *const sym_names[] = {%s};", #syms > 0 and table.concat(syms, ", ") or "0"))
  local init_kind = { zeros = "RECLF_INIT_ZEROS", ones = "RECLF_INIT_ONES", uniform = "RECLF_INIT_UNIFORM", normal = "RECLF_INIT_NORMAL" }
  w("static const reclf_param_desc params[] = {")
  for _, p in ipairs(graph.params) do
    w(string.format("    {%s, %d, %s, %d, %d, %s, %.17g, %d, %s},", c_string(p.attrs.name), #p.shape, shape_init(graph, p.shape),
      poff[p.id], size.numel(p.shape).c, init_kind[p.attrs.init], p.attrs.init_arg, p.attrs.decay and 1 or 0, c_string(p.src)))
  end
  if #graph.params == 0 then w("    {0, 0, {0}, 0, 0, 0, 0, 0, 0},") end
  w("};")
  local function tensor_table(tname, list)
    w("static const reclf_tensor_desc " .. tname .. "[] = {")
    for _, t in ipairs(list) do
      w(string.format("    {%s, %s, %d, %s, %d, %d, %s},", c_string(t.name), t.dtype == "int32" and "RECLF_INT32" or "RECLF_REAL",
        #t.shape, shape_init(graph, t.shape), t.grad and 1 or 0, t.max or 0, c_string(t.role or "data")))
    end
    w("};")
  end
  local ins = {}
  for i, x in ipairs(graph.inputs) do
    ins[i] = { name = x.attrs.name, dtype = x.dtype, shape = x.shape, grad = graph.input_grads and graph.input_grads[i] ~= nil,
      max = x.attrs.max, role = x.attrs.role }
  end
  local outs = {}
  for i, o in ipairs(graph.outputs) do outs[i] = { name = o.name, dtype = "real", shape = o.node.shape, role = "data" } end
  tensor_table("inputs_desc", ins)
  tensor_table("outputs_desc", outs)
  w(string.format("\nconst reclf_graph reclf_graph_%s = {", cname))
  w(string.format("    %s, %d, sym_names, %d, params, %d,", c_string(graph.name), #graph.syms, #graph.params, total))
  w(string.format("    %d, inputs_desc, %d, outputs_desc,", #graph.inputs, #graph.outputs))
  w(string.format("    %s,", c_string(json_value(graph.cfg or {}))))
  w("    arena_bytes, forward, backward, output,")
  w("};")

  local header = table.concat({
    string.format("/* %s.h: generated by reclfc from %s. Do not edit. */", cname, graph.path or "?"),
    string.format("#ifndef RECLF_GENERATED_%s_H\n#define RECLF_GENERATED_%s_H", cname:upper(), cname:upper()),
    "#include \"graph_abi.h\"",
    string.format("extern const reclf_graph reclf_graph_%s;", cname),
    "#endif", "" }, "\n")
  return table.concat(out, "\n") .. "\n", header, kernels
end

return M
