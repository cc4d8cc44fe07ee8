#!/usr/bin/env bash
# Faults during training:
#  - a NaN/Inf loss or gradient stops the run at the step it appears, names the first tensor with a
#    non-finite gradient and keeps the last good checkpoint (all finite, loadable); --on-nan skip
#    skips such steps and the run completes. The fault is real, not injected: --lr 1e20 makes the
#    parameters overflow after one update.
#  - SIGINT and SIGTERM write a checkpoint at the current step and exit 0; --resume continues there.
#   tests/robust/faults.sh [path/to/reclf]
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$(realpath "${1:-$ROOT/bin/reclf}")
. "$HERE/lib.sh"
T=$(mktemp -d /tmp/reclf_faults.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
"$BIN" data synth --n 8 --split train --out d >/dev/null || { echo "data synth failed"; exit 1; }
"$BIN" data synth --n 4 --split val --out v >/dev/null || exit 1
TRAIN=("$BIN" train --model convirt --batch 4 --data d/manifest.csv)

# ckpt_step FILE: the "step" of a checkpoint's metadata
ckpt_step() { grep -ao '"step":"[0-9]*"' "$1" | head -n1 | tr -dc 0-9; }
# all_finite FILE: every F32 value of a safetensors file is finite (prints the first bad tensor)
all_finite() {
    perl -e 'open my $f, "<:raw", $ARGV[0] or die; local $/; my $b = <$f>;
             my $n = unpack("Q<", substr($b, 0, 8)); my $h = substr($b, 8, $n);
             while ($h =~ /"([^"]+)":\{"dtype":"F32","shape":\[[0-9,]*\],"data_offsets":\[(\d+),(\d+)\]\}/g) {
                 for my $x (unpack("f<*", substr($b, 8 + $n + $2, $3 - $2))) {
                     if ($x != $x || $x * 0 != 0) { print "$1\n"; exit 1 } } }' "$1"
}
# last_logged_step: the step of the last metrics.jsonl line of run folder $1
last_logged_step() { tail -n1 "$1/metrics.jsonl" | grep -o '"step": [0-9]*' | tr -dc 0-9; }

echo "== NaN/Inf: stop at once, name the tensor, keep the last good checkpoint"
run "${TRAIN[@]}" --steps 30 --lr 1e20 --ckpt-every 1 --log-every 1 --out nan
check "--lr 1e20 stops with exit 1" '[ "$rc" -eq 1 ] && ! crashed'
check "message names the step, the first tensor and the checkpoint" \
    'grep -qE "^reclf train: step 2: non-finite gradient, first in tensor image.stem.weight \(loss -?nan\); stopped, the last good checkpoint is nan/checkpoint.safetensors" <<<"$out"'
check "checkpoint kept at the last good step (1)" '[ "$(ckpt_step nan/checkpoint.safetensors)" = 1 ]'
check "metrics end at the last good step" '[ "$(last_logged_step nan)" = 1 ]'
check "kept checkpoint is all finite" 'all_finite nan/checkpoint.safetensors'
run "$BIN" dump --ckpt nan/checkpoint.safetensors --out nan_state.st --batch 2 --data v/manifest.csv
check "kept checkpoint loads (reclf dump)" '[ "$rc" -eq 0 ] && [ -s nan_state.st ]'
check "no temporary file left behind" '[ -z "$(ls nan | grep -F .tmp.)" ]'
# resuming the diverged run with the same settings meets the same NaN at the same step
run "${TRAIN[@]}" --steps 30 --lr 1e20 --ckpt-every 1 --out nan --resume
check "resume meets the NaN again at step 2 and keeps step 1" \
    '[ "$rc" -eq 1 ] && grep -q "step 2: non-finite" <<<"$out" && [ "$(ckpt_step nan/checkpoint.safetensors)" = 1 ]'

run "${TRAIN[@]}" --steps 6 --lr 1e20 --ckpt-every 1 --on-nan skip --out nan_skip
check "--on-nan skip: completes with exit 0" '[ "$rc" -eq 0 ] && ! crashed && grep -q "done: 6 steps (some skipped)" <<<"$out"'
check "--on-nan skip: says which step and tensor" \
    'grep -q "step 2: non-finite gradient, first in tensor image.stem.weight (loss .*nan): update skipped (--on-nan skip)" <<<"$out"'
check "--on-nan skip: 5 steps skipped" '[ "$(grep -c "update skipped" <<<"$out")" = 5 ]'
check "--on-nan skip: parameters stay finite" 'all_finite nan_skip/checkpoint.safetensors'

echo "== SIGINT / SIGTERM: checkpoint and clean exit, then resume"
for sig in INT TERM; do
    dir=sig_$sig
    "${TRAIN[@]}" --steps 100000 --ckpt-every 100000 --log-every 1 --quiet --out $dir >$dir.log 2>&1 &
    pid=$!
    # wait for 3 logged steps (at most 120 s: the machine may be busy), then signal
    for _ in $(seq 1200); do
        [ -f $dir/metrics.jsonl ] && [ "$(wc -l <$dir/metrics.jsonl)" -ge 3 ] && break
        sleep 0.1
    done
    kill -s $sig $pid
    wait $pid
    rc=$?
    out=$(cat $dir.log)
    signo=$([ $sig = INT ] && echo 2 || echo 15)
    check "SIG$sig: exit 0" '[ "$rc" -eq 0 ]'
    n=$(grep -o "stopped by signal $signo at step [0-9]*" <<<"$out" | grep -o '[0-9]*$')
    check "SIG$sig: says 'stopped by signal $signo at step N'" '[ -n "$n" ] && [ "$n" -ge 3 ]'
    check "SIG$sig: checkpoint at step N" '[ "$(ckpt_step $dir/checkpoint.safetensors)" = "$n" ]'
    check "SIG$sig: metrics up to step N" '[ "$(last_logged_step $dir)" = "$n" ]'
    run "${TRAIN[@]}" --steps $((n + 2)) --out $dir --resume
    check "SIG$sig: --resume continues from step N to N+2" \
        '[ "$rc" -eq 0 ] && grep -q "resuming $dir/checkpoint.safetensors from step $n of $((n + 2))" <<<"$out" && [ "$(ckpt_step $dir/checkpoint.safetensors)" = $((n + 2)) ]'
done
summary
