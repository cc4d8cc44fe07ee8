-- SPEC 7 variant `reclf-nosrm`: see graphs/lib/model.lua for the composition.
return require("graphs.lib.model")("reclf-nosrm")
