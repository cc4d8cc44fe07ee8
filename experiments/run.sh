#!/usr/bin/env bash
# SPEC §10's experiment: every variant, with and without the §8a side-swap negatives, several seeds,
# the same step budget; each checkpoint evaluated on all four tasks; a random-initialised encoder as
# the floor; then RESULTS.md, results.json and gnuplot PNGs (experiments/results.py).
#
# Configuration (environment; `make experiments VAR=...` passes them through):
#   EXP_STEPS      training steps of every run (default 1000)
#   EXP_BATCH      batch (default 32)
#   EXP_SEEDS      training seeds (default "1 2 3")
#   EXP_VARIANTS   graphs (default "reclf reclf-nosrm reclf-noirm gloria convirt")
#   EXP_HN         hard-negative modes (default "none side-swap")
#   EXP_EVAL_ARGS  extra arguments of `bin/reclf eval` (default: none, i.e. the full evaluation)
#   EXP_TRAIN_ARGS extra arguments of `bin/reclf train` (default: none)
#   EXP_OUT        output folder (default results)
#   EXP_JOBS       runs trained and evaluated at once (default 1); each gets nproc/EXP_JOBS OpenMP
#                  threads. On a small machine 2 one-thread runs finish sooner than 2 two-thread runs
#                  one after the other (the step scales poorly past one thread at batch 32).
#
# Runs live in $EXP_OUT/runs/steps<N>-b<B>/<variant>-<hn>-s<seed> (the floor: random-s<seed>), so runs
# of another step budget never resume each other (a resumed run keeps the cosine schedule of its own
# budget). It is resumable: a run whose checkpoint is at the final step is not trained again, a
# partial one continues with --resume, and an eval.json made with the same EXP_EVAL_ARGS from the
# current checkpoint is kept. Runs go seed by seed, so an interrupted experiment has whole seeds.
set -u
cd "$(dirname "$0")/.." || exit 1

STEPS=${EXP_STEPS:-1000}
BATCH=${EXP_BATCH:-32}
SEEDS=${EXP_SEEDS:-1 2 3}
VARIANTS=${EXP_VARIANTS:-reclf reclf-nosrm reclf-noirm gloria convirt}
HNS=${EXP_HN:-none side-swap}
EVAL_ARGS=${EXP_EVAL_ARGS:-}
TRAIN_ARGS=${EXP_TRAIN_ARGS:-}
OUT=${EXP_OUT:-results}
JOBS=${EXP_JOBS:-1}
case $JOBS in ''|*[!0-9]*|0) echo "EXP_JOBS must be a positive integer, not '$JOBS'" >&2; exit 2 ;; esac
RECLF=bin/reclf
PY=/usr/bin/python3
HELPER=experiments/results.py

RUNS=$OUT/runs/steps$STEPS-b$BATCH
mkdir -p "$RUNS"
LOG=$OUT/experiments.log
failed=0
FAILED_MARK=$RUNS/.failed.$$
rm -f "$FAILED_MARK"
if [ "$JOBS" -gt 1 ]; then
    threads=$(( $(nproc) / JOBS )); [ "$threads" -lt 1 ] && threads=1
    export OMP_NUM_THREADS=$threads
fi

COMMAND="make experiments EXP_STEPS=$STEPS EXP_BATCH=$BATCH EXP_SEEDS='$SEEDS' EXP_VARIANTS='$VARIANTS' EXP_HN='$HNS' EXP_EVAL_ARGS='$EVAL_ARGS'"
[ "$JOBS" != 1 ] && COMMAND="$COMMAND EXP_JOBS=$JOBS"
[ -n "$TRAIN_ARGS" ] && COMMAND="$COMMAND EXP_TRAIN_ARGS='$TRAIN_ARGS'"
[ "$OUT" != results ] && COMMAND="$COMMAND EXP_OUT=$OUT"

say() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG"; }

say "start: $COMMAND (git $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ', dirty tree'))"

# train DIR ARGS...: train to STEPS unless the checkpoint is there already (resume a partial one)
train() {
    local dir=$1; shift
    local ckpt=$dir/checkpoint.safetensors resume=
    if [ -f "$ckpt" ]; then
        local info step csteps cbatch
        info=$($PY $HELPER ckpt-step "$ckpt") || return 1
        read -r step csteps cbatch _ <<<"$info"
        if [ "$csteps" != "$TARGET" ] || [ "$cbatch" != "$BATCH" ]; then
            say "FAIL $dir: its checkpoint was made for $csteps steps at batch $cbatch, not $TARGET at $BATCH"
            return 1
        fi
        if [ "$step" = "$TARGET" ]; then
            say "skip train $dir (checkpoint at step $step)"
            return 0
        fi
        resume=--resume
        say "resume $dir from step $step"
    fi
    mkdir -p "$dir"
    local t0=$SECONDS
    # shellcheck disable=SC2086
    if ! $RECLF train "$@" --steps "$TARGET" --batch "$BATCH" --out "$dir" $resume --quiet $TRAIN_ARGS \
            >>"$dir/train.log" 2>&1; then
        say "FAIL train $dir (see $dir/train.log)"
        return 1
    fi
    say "trained $dir: $TARGET steps, $((SECONDS - t0)) s"
}

# evaluate DIR: eval.json of the current checkpoint with EVAL_ARGS, unless it is up to date
evaluate() {
    local dir=$1 ckpt=$1/checkpoint.safetensors
    if [ -f "$dir/eval.json" ] && [ "$dir/eval.json" -nt "$ckpt" ] && [ -f "$dir/eval.args" ] &&
        [ "$(cat "$dir/eval.args")" = "$EVAL_ARGS" ]; then
        say "skip eval $dir (eval.json up to date)"
        return 0
    fi
    local t0=$SECONDS
    # shellcheck disable=SC2086
    if ! $RECLF eval --ckpt "$ckpt" --task all --json "$dir/eval.json.tmp" --quiet $EVAL_ARGS >"$dir/eval.log" 2>&1; then
        say "FAIL eval $dir (see $dir/eval.log)"
        return 1
    fi
    mv "$dir/eval.json.tmp" "$dir/eval.json"
    printf '%s\n' "$EVAL_ARGS" >"$dir/eval.args"
    say "evaluated $dir: $((SECONDS - t0)) s, $($PY -c 'import json,sys; e=json.load(open(sys.argv[1])); print("zero-shot AUROC %.3f, mirror binding %.3f" % (e["zeroshot"]["macro_auroc"], e["retrieval"]["combined"]["binding_mirror"]))' "$dir/eval.json" 2>/dev/null)"
}

# run_floor SEED: the floor, a reclf encoder at its initial parameters. One AdamW step at lr 0
# leaves every parameter where it was (decay factor 1 - lr*wd = 1, step size 0); check-floor
# verifies it on the file.
run_floor() {
    local d=$RUNS/random-s$1
    TARGET=1
    if train "$d" --model reclf --seed "$1" --lr 0 && $PY $HELPER check-floor "$d/checkpoint.safetensors" >>"$LOG"
    then evaluate "$d" || touch "$FAILED_MARK"
    else touch "$FAILED_MARK"
    fi
}

# run_variant VARIANT HN SEED: train to STEPS, then evaluate
run_variant() {
    local d=$RUNS/$1-$2-s$3
    TARGET=$STEPS
    if train "$d" --model "$1" --seed "$3" --hard-negatives "$2"
    then evaluate "$d" || touch "$FAILED_MARK"
    else touch "$FAILED_MARK"
    fi
}

# launch FUNCTION ARGS...: now (EXP_JOBS=1), or in the background once one of the slots is free
launch() {
    if [ "$JOBS" -le 1 ]; then "$@"; return; fi
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
    "$@" &
}

for s in $SEEDS; do
    launch run_floor "$s"
    for h in $HNS; do
        for v in $VARIANTS; do
            launch run_variant "$v" "$h" "$s"
        done
    done
done
wait
[ -f "$FAILED_MARK" ] && failed=1
rm -f "$FAILED_MARK"

$PY $HELPER aggregate "$RUNS" "$OUT" "$VARIANTS" "$HNS" "$SEEDS" "$STEPS" "$BATCH" "$EVAL_ARGS" "$COMMAND" | tee -a "$LOG"
say "done$([ $failed = 1 ] && echo ', with failures (see above)')"
exit $failed
