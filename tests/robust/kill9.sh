#!/usr/bin/env bash
# kill -9 at random moments: checkpoints are written to a temporary file, fsync'ed and renamed
# (runtime/common.c), so whenever the process dies the checkpoint on disk is a whole one. The run
# is killed KILLS times at random moments (checkpointing every step, so many kills land in a
# write), resumed each time, and must
#   - leave after every kill a checkpoint that loads (reclf dump reads and checks all of it),
#   - complete, with a final checkpoint byte-identical to that of an uninterrupted run (resume is
#     exact: data order and schedule are functions of (seed, step)), so nothing was lost.
#   tests/robust/kill9.sh [path/to/reclf] [KILLS] [STEPS]
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$(realpath "${1:-$ROOT/bin/reclf}")
KILLS=${2:-5}
STEPS=${3:-30}
. "$HERE/lib.sh"
T=$(mktemp -d /tmp/reclf_kill9.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
"$BIN" data synth --n 12 --split train --out d >/dev/null || { echo "data synth failed"; exit 1; }
"$BIN" data synth --n 4 --split val --out v >/dev/null || exit 1
TRAIN=("$BIN" train --model convirt --batch 4 --steps "$STEPS" --ckpt-every 1 --quiet --data d/manifest.csv)
ckpt_step() { grep -ao '"step":"[0-9]*"' "$1" | head -n1 | tr -dc 0-9; }

t0=$(date +%s.%N)
"${TRAIN[@]}" --out ref >/dev/null || { echo "reference run failed"; exit 1; }
t_ref=$(echo "$(date +%s.%N) - $t0" | bc)
echo "reference run: $STEPS steps in ${t_ref} s; kill schedule seed $$"

RANDOM=$$ # a different schedule each time; printed so that a failure can be replayed by hand
resume=()
last=0
for k in $(seq "$KILLS"); do
    # a random moment 0.3 to 1.5 s after the start (a start takes ~0.3 s, a step with its
    # checkpoint ~0.2 s), so that a few steps are taken and the run is not over yet
    ms=$((300 + RANDOM % 1200))
    "${TRAIN[@]}" --out run "${resume[@]}" >>run.log 2>&1 &
    pid=$!
    sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    krc=$?
    resume=(--resume)
    if [ ! -e run/checkpoint.safetensors ]; then
        check "kill $k after ${ms} ms (exit $krc): no checkpoint yet" '[ "$last" -eq 0 ]'
        resume=()
        continue
    fi
    step=$(ckpt_step run/checkpoint.safetensors)
    run "$BIN" dump --ckpt run/checkpoint.safetensors --out state.st --batch 2 --data v/manifest.csv
    check "kill $k after ${ms} ms (exit $krc): checkpoint at step $step loads" \
        '[ "$rc" -eq 0 ] && [ "$step" -ge "$last" ]'
    last=$step
done
tmp_left=$(ls run | grep -c '\.tmp\.')
echo "     ($tmp_left temporary file(s) of killed writes left in the run folder)"
run "${TRAIN[@]}" --out run "${resume[@]}"
check "the run completes after $KILLS kills" '[ "$rc" -eq 0 ] && [ "$(ckpt_step run/checkpoint.safetensors)" = "$STEPS" ]'
check "final checkpoint is byte-identical to the uninterrupted run" 'cmp -s run/checkpoint.safetensors ref/checkpoint.safetensors'
# metrics.jsonl: every line whole (a kill may land between two writes, not inside a line's bytes)
bad_lines=$(grep -cv '^{.*}$' run/metrics.jsonl)
check "metrics.jsonl has no torn line" '[ "$bad_lines" -eq 0 ]'
check "metrics.jsonl reaches step $STEPS" 'tail -n1 run/metrics.jsonl | grep -q "\"step\": $STEPS,"'
# a resumed run first drops what the killed one logged after its checkpoint: each step once, in order
steps_logged=$(grep -o '"step": [0-9]*' run/metrics.jsonl | awk '{print $2}' | tr '\n' ' ')
steps_want=$(seq 1 "$STEPS" | tr '\n' ' ')
check "metrics.jsonl logs steps 1..$STEPS once each" '[ "$steps_logged" = "$steps_want" ]'
check "the killed writes' temporary files are gone" '[ "$(ls run | grep -c "\.tmp\.")" -eq 0 ]'
summary
