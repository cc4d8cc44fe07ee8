-- The op registry: every op family declares, per op, its shape rule (infer), its gradient rule
-- written with the functional builder (grad), its C lowering (emit) and its FLOP count.
-- Adding an op means adding an entry to one of these files (or a new family file listed here).
local families = { "leaf", "elementwise", "reduce", "matmul", "shape", "index", "conv", "norm", "fused" }
local ops = {}
for _, fam in ipairs(families) do
  for name, def in pairs(require("compiler.ops." .. fam).ops) do
    assert(not ops[name], "op declared twice: " .. name)
    def.family = fam
    ops[name] = def
  end
end
return ops
