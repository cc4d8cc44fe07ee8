-- SPEC 7 variant `convirt`: see graphs/lib/model.lua for the composition.
return require("graphs.lib.model")("convirt")
