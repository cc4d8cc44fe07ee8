-- Leaves: graph inputs (data from the runtime) and parameters (the packed parameter buffer).
local M = { ops = {} }
M.ops.input = { leaf = true, infer = function(n) return n.attrs.shape, n.attrs.dtype end }
M.ops.param = { leaf = true, infer = function(n) return n.attrs.shape, "real" end }
return M
