-- SPEC 7 variant `gloria`: see graphs/lib/model.lua for the composition.
return require("graphs.lib.model")("gloria")
