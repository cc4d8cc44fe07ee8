#!/usr/bin/env bash
# Data-parallel training tests (runtime/dist.c, mk/mpi.mk). usage: tests/mpi/run.sh [BIN]
#   without MPI:  --gather in one process gives the plain training graph's result (the split
#                 graphs are the same function); bad --grad-accum cuts are refused
#   with MPI (2 ranks on loopback, each 1 thread; the references use --threads 1 to match):
#     --gather:    2 x 16 = one process at batch 32, side-swap negatives included (which checks
#                  the gathered text order: all real reports first, then all extras)
#     plain:       2 x 16 = one process with --grad-accum 2, including stop and --resume under mpirun
#     --check-sync catches ranks whose parameters differ (RECLF_TEST_DESYNC nudges one on purpose)
#   and rank 0 alone writes metrics.jsonl (allreduce_s, gather_s logged) and the checkpoint.
set -uo pipefail
BIN=${1:-$(cd "$(dirname "$0")/../.." && pwd)/bin/reclf}
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# both ranks on this machine: shared memory between them, and only loopback for OpenMPI's own TCP
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
MPIRUN=(timeout 300 mpirun --oversubscribe --allow-run-as-root -np 2)
n_pass=0
n_fail=0

# check NAME CMD...: CMD's exit status decides; its last line is shown
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        n_pass=$((n_pass + 1))
        echo "ok   $name: ${out##*$'\n'}"
    else
        n_fail=$((n_fail + 1))
        echo "FAIL $name"
        tail -n 25 <<<"$out" | sed 's/^/     | /'
    fi
}
train() { "$BIN" train --quiet --ckpt-every 1000 "$@"; }
lines() { [ "$(wc -l <"$1")" -eq "$2" ] || { echo "$1: $(wc -l <"$1") lines, expected $2"; return 1; }; echo "$1: $2 lines"; }

# ---- one process ------------------------------------------------------------------------------
R=$TMP/single
check "one process: --gather trains like the plain graph (reclf, side-swap)" bash -c "
    set -e
    $(declare -f train); BIN='$BIN'
    train --model reclf --steps 3 --batch 8 --hard-negatives side-swap --out $R/plain >/dev/null
    train --model reclf --steps 3 --batch 8 --hard-negatives side-swap --gather --out $R/gather >/dev/null
    python3 $HERE/compare_metrics.py $R/gather/metrics.jsonl $R/plain/metrics.jsonl 1e-6
    python3 $HERE/compare.py $R/gather/checkpoint.safetensors $R/plain/checkpoint.safetensors 1e-6"
check "one process: metrics.jsonl keeps its keys without MPI" bash -c "
    head -1 $R/gather/metrics.jsonl | python3 -c 'import json,sys; k=list(json.loads(sys.stdin.read())); \
    assert k == [\"step\",\"loss\",\"lr\",\"grad_norm\",\"texts\",\"data_s\",\"step_s\",\"elapsed_s\"], k; print(k)'"
check "one process: --grad-accum leaving one pair per micro-batch is refused" bash -c "
    ! out=\$('$BIN' train --quiet --model convirt --steps 1 --batch 3 --grad-accum 2 --out $R/bad 2>&1) &&
    grep -q 'leaves 1 pair' <<<\"\$out\" && echo \"\$out\""

# ---- two ranks --------------------------------------------------------------------------------
if ! command -v mpirun >/dev/null || ! grep -q libmpi <<<"$(ldd "$BIN" 2>/dev/null)"; then
    echo "skip two-rank tests: $BIN is not built with MPI or mpirun is missing (mk/mpi.mk installs OpenMPI)"
else
    M=$TMP/mpi
    # --gather: the same function as one process at the global batch. Both runs stop after one
    # step (its AdamW first moments are the first gradients: compared tensor by tensor) and resume
    # to 5 (parameters compared). lr 1e-4: AdamW's early updates are near lr * sign(g), so
    # elements whose gradient is a near-cancelling sum move by up to lr on float noise alone (the
    # two runs add the same per-sample terms in another order); at the default 1e-3 that noise
    # reaches 2.5e-4 relative after 5 steps, at 1e-4 about 1.5e-5 (tests/mpi/compare.py)
    G=(--model reclf --steps 5 --batch 32 --hard-negatives side-swap --lr 1e-4)
    train "${G[@]}" --threads 1 --stop-after 1 --out $M/ref32 >/dev/null
    "${MPIRUN[@]}" "$BIN" train --quiet "${G[@]}" --gather --check-sync --stop-after 1 --out $M/gather \
        >$M/gather.log 2>&1
    check "2 ranks --gather = 1 process at batch 32: gradients of step 1" \
        python3 $HERE/compare.py $M/gather/checkpoint.safetensors $M/ref32/checkpoint.safetensors 1e-4 --moments
    train "${G[@]}" --threads 1 --resume --out $M/ref32 >/dev/null
    "${MPIRUN[@]}" "$BIN" train --quiet "${G[@]}" --gather --check-sync --resume --out $M/gather >>$M/gather.log 2>&1
    check "2 ranks --gather: stop after 1 step, --resume to 5, with --check-sync" bash -c "
        cat $M/gather.log; grep -q 'stopped after 1 updates' $M/gather.log && test -f $M/gather/checkpoint.safetensors"
    check "2 ranks --gather: rank 0 alone logs" lines $M/gather/metrics.jsonl 5
    check "2 ranks --gather = 1 process at batch 32: loss, |g|, texts per step" \
        python3 $HERE/compare_metrics.py $M/gather/metrics.jsonl $M/ref32/metrics.jsonl 1e-6 --later 5e-3 \
        --need allreduce_s --need gather_s
    check "2 ranks --gather = 1 process at batch 32: parameters after 5 steps" \
        python3 $HERE/compare.py $M/gather/checkpoint.safetensors $M/ref32/checkpoint.safetensors 1e-4

    # without --gather: each rank's shard is its own contrastive batch = --grad-accum 2
    train --model convirt --steps 5 --batch 32 --hard-negatives side-swap --threads 1 --grad-accum 2 \
        --out $M/accum >/dev/null
    "${MPIRUN[@]}" "$BIN" train --quiet --model convirt --steps 5 --batch 32 --hard-negatives side-swap \
        --check-sync --stop-after 3 --out $M/dp >$M/dp.log 2>&1
    "${MPIRUN[@]}" "$BIN" train --quiet --model convirt --steps 5 --batch 32 --hard-negatives side-swap \
        --check-sync --resume --out $M/dp >>$M/dp.log 2>&1
    check "2 ranks: stop after 3 steps, --resume to 5" bash -c "cat $M/dp.log; grep -q 'stopped after 3 updates' $M/dp.log"
    check "2 ranks = 1 process --grad-accum 2: loss, |g|, texts per step" \
        python3 $HERE/compare_metrics.py $M/dp/metrics.jsonl $M/accum/metrics.jsonl 1e-6 --need allreduce_s
    check "2 ranks = 1 process --grad-accum 2: parameters after 5 steps" \
        python3 $HERE/compare.py $M/dp/checkpoint.safetensors $M/accum/checkpoint.safetensors 1e-6

    # the guard itself: one rank's parameters nudged after step 2 must stop the run there
    RECLF_TEST_DESYNC=2 "${MPIRUN[@]}" -x RECLF_TEST_DESYNC "$BIN" train --quiet --model convirt --steps 4 \
        --batch 8 --check-sync --out $M/desync >$M/desync.log 2>&1
    rc=$?
    check "2 ranks --check-sync: diverged parameters stop the job" bash -c "
        test $rc -ne 0 && grep -m1 -- '--check-sync: after step 2 the parameters of rank 1 differ' $M/desync.log"
fi
echo "mpi: $n_pass passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
