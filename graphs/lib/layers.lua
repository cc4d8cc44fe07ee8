-- Layers with their parameters, named as SPEC 8b: <prefix>.weight / <prefix>.bias.
-- PyTorch's defaults: Kaiming-uniform weights and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) biases.
local L = {}

-- x: [..., fan_in] -> [..., out]; weight [out, fan_in] as PyTorch's Linear
function L.linear(g, prefix, x, fan_in, out)
  local bound = 1 / math.sqrt(fan_in)
  local W = g.param(prefix .. ".weight", { out, fan_in })
  local b = g.param(prefix .. ".bias", { out }, { init = { "uniform", bound }, decay = false })
  return g.linear(x, W, b)
end

-- 3x3 convolution, padding 1: x [N, cin, H, W] -> [N, cout, H/stride, W/stride]
function L.conv3x3(g, prefix, x, cin, cout, stride)
  local W = g.param(prefix .. ".weight", { cout, cin, 3, 3 })
  local b = g.param(prefix .. ".bias", { cout }, { init = { "uniform", 1 / math.sqrt(cin * 9) }, decay = false })
  return g.conv2d(x, W, b, stride or 1, 1)
end

-- GroupNorm with affine gamma = 1, beta = 0 at start (no weight decay on either)
function L.group_norm(g, prefix, x, channels, groups)
  local gamma = g.param(prefix .. ".weight", { channels }, { init = "ones", decay = false })
  local beta = g.param(prefix .. ".bias", { channels }, { init = "zeros", decay = false })
  return g.group_norm(x, groups, gamma, beta, 1e-5)
end

function L.layer_norm(g, prefix, x, width)
  local gamma = g.param(prefix .. ".weight", { width }, { init = "ones", decay = false })
  local beta = g.param(prefix .. ".bias", { width }, { init = "zeros", decay = false })
  return g.layer_norm(x, gamma, beta, 1e-5)
end

-- a d_in x d_out matrix applied as x . W (SRM and IRM, SPEC 8b); decayed like other weights
function L.matrix(g, name, d_in, d_out, opt)
  local init = (opt and opt.init) or { "uniform", 1 / math.sqrt(d_in) }
  return g.param(name, { d_in, d_out }, { init = init, decay = true })
end

return L
