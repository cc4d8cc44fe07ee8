#!/usr/bin/env bash
# A short training run, a resume and a debug dump under a checking tool:
#   tests/robust/sanitized_run.sh asan     build-asan/bin/reclf   (ASan + UBSan: any report fails)
#   tests/robust/sanitized_run.sh valgrind build-vg/bin/reclf     (memcheck, --leak-check=full)
# Data come from an 8-row manifest so that no 20,000-report vocabulary is built (slow under valgrind).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
MODE=$1
BIN=$(realpath "$2")
. "$HERE/lib.sh"
T=$(mktemp -d /tmp/reclf_sanitized.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
case "$MODE" in
asan)
    pre=()
    steps=3 ;;
valgrind)
    # one thread: valgrind serialises threads anyway, and libgomp's pool would only add noise
    export OMP_NUM_THREADS=1
    pre=(valgrind -q --leak-check=full --show-leak-kinds=definite,possible --errors-for-leak-kinds=definite,possible
         --error-exitcode=99)
    steps=1 ;;
*) echo "usage: $0 asan|valgrind BIN" >&2; exit 2 ;;
esac
"$BIN" data synth --n 8 --split train --out d >/dev/null || { echo "data synth failed"; exit 1; }
"$BIN" data synth --n 4 --split val --out v >/dev/null || exit 1

t0=$(date +%s)
run "${pre[@]}" "$BIN" train --model convirt --batch 4 --steps "$steps" --quiet --data d/manifest.csv --out run
check "$MODE: train $steps steps" '[ "$rc" -eq 0 ] && ! crashed && [ -s run/checkpoint.safetensors ]'
[ "$MODE" = valgrind ] && echo "     ($(($(date +%s) - t0)) s under valgrind)"
run "${pre[@]}" "$BIN" train --model convirt --batch 4 --steps $((steps + 1)) --quiet --resume --data d/manifest.csv --out run
check "$MODE: resume one more step" '[ "$rc" -eq 0 ] && ! crashed'
run "${pre[@]}" "$BIN" dump --ckpt run/checkpoint.safetensors --out state.safetensors --batch 2 --data v/manifest.csv
check "$MODE: dump" '[ "$rc" -eq 0 ] && ! crashed && [ -s state.safetensors ]'
# an error path too: a truncated checkpoint must be refused without leaks
head -c 100000 run/checkpoint.safetensors >bad.safetensors
run "${pre[@]}" "$BIN" dump --ckpt bad.safetensors --out state2.safetensors --batch 2 --data v/manifest.csv
check "$MODE: dump refuses a truncated checkpoint" '[ "$rc" -eq 1 ] && ! crashed'
summary
