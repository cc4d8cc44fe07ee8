# SPEC §10's experiment (not part of `make test`: it trains and evaluates for hours at the defaults).
#   make experiments                          5 variants x {none, side-swap} x seeds 1 2 3, 1000 steps
#   make experiments EXP_STEPS=200 EXP_SEEDS=1 EXP_HN=none \
#        EXP_EVAL_ARGS='--limit 500 --probe-pool 2000 --retrieval-pool 500 --seg-steps 100'
# Outputs: results/RESULTS.md, results/results.json, results/plots/*.png, runs in results/runs/.
# Resumable: run it again after an interruption and finished runs and evals are kept.
EXP_STEPS     ?= 1000
EXP_BATCH     ?= 32
EXP_SEEDS     ?= 1 2 3
EXP_VARIANTS  ?= reclf reclf-nosrm reclf-noirm gloria convirt
EXP_HN        ?= none side-swap
EXP_EVAL_ARGS ?=
EXP_TRAIN_ARGS ?=
EXP_OUT       ?= results

.PHONY: experiments
experiments: all
	@EXP_STEPS='$(EXP_STEPS)' EXP_BATCH='$(EXP_BATCH)' EXP_SEEDS='$(EXP_SEEDS)' EXP_VARIANTS='$(EXP_VARIANTS)' \
	 EXP_HN='$(EXP_HN)' EXP_EVAL_ARGS='$(EXP_EVAL_ARGS)' EXP_TRAIN_ARGS='$(EXP_TRAIN_ARGS)' EXP_OUT='$(EXP_OUT)' \
	 experiments/run.sh
