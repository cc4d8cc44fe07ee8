#!/usr/bin/env bash
# make bench: the reclf training step, kernel by kernel, fused against unfused, and side by side
# with the same SPEC model in PyTorch (bench/torch), at 1 and 2 threads; the compiler's and the C
# build's times. Writes bench/results/bench.json and bench/results/BENCH.md.
#
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for every measurement here, for both sides
# alike (older OpenBLAS builds need them on this CPU for correctness in general use; the sgemm
# kernels used here are the same either way, and with them set OpenBLAS runs ~20% slower).
# Settings: BENCH_STEPS (timed steps, default 12), BENCH_WARMUP (3), BENCH_BATCH (32),
# BENCH_REPEATS (3): every measurement is repeated, ours and PyTorch's interleaved, and the
# tables show the median of the repeats' medians (the machine may be shared and noisy).
# BENCH_RENDER_ONLY=1 writes BENCH.md again from the last bench.json without measuring.
set -euo pipefail
cd "$(dirname "$0")/.."
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
# both sides wait for work the way bin/reclf does by default (runtime/main.c): a short spin
unset OMP_WAIT_POLICY
export GOMP_SPINCOUNT=1000
steps=${BENCH_STEPS:-12}; warm=${BENCH_WARMUP:-3}; batch=${BENCH_BATCH:-32}; repeats=${BENCH_REPEATS:-3}
out=bench/results; mkdir -p "$out"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3

src=$tmp
if [ -n "${BENCH_RENDER_ONLY:-}" ]; then # the tables again from the last bench.json, nothing measured
  src=-; gen_s=0; cc_s=0
else
echo "== compile times"
t0=$(date +%s.%N)
LUA_PATH="$PWD/?.lua;$PWD/?/init.lua;;" luajit compiler/generate_all.lua graphs "$tmp/gen" >/dev/null
t1=$(date +%s.%N)
# the C build of everything generated, one file after another on one core
for f in "$tmp"/gen/*.c; do
  cc -O3 -march=native -std=c11 -fopenmp -Iruntime -I"$tmp/gen" -I/usr/include/x86_64-linux-gnu/openblas-openmp -c "$f" -o "$tmp/$(basename "$f" .c).o"
done
t2=$(date +%s.%N)
gen_s=$(echo "$t1 - $t0" | bc); cc_s=$(echo "$t2 - $t1" | bc)
echo "make generate (all graphs): ${gen_s} s; cc -O3 of all of generated/ (one core): ${cc_s} s"

for rep in $(seq 1 "$repeats"); do
for th in 1 2; do
  r=${th}_r$rep; top=0; [ "$rep" = 1 ] && top=40
  echo "== reclf step, ours, $th thread(s) (repeat $rep of $repeats)"
  OMP_NUM_THREADS=$th bin/bench-step --model reclf --batch "$batch" --steps "$steps" --warmup "$warm" --top $top --json "$tmp/ours_reclf_$r.json" | tee "$tmp/ours_reclf_$r.txt"
  echo "== reclf step, ours unfused (--no-fuse), $th thread(s)"
  OMP_NUM_THREADS=$th bin/bench-step-unfused --model reclf --batch "$batch" --steps "$steps" --warmup "$warm" --top 0 --json "$tmp/unfused_reclf_$r.json" | head -3
  echo "== convirt step, ours, $th thread(s)"
  OMP_NUM_THREADS=$th bin/bench-step --model convirt --batch "$batch" --steps "$steps" --warmup "$warm" --top 0 --json "$tmp/ours_convirt_$r.json" | head -3
  for model in reclf convirt; do
    for alloc in plain tuned; do
      echo "== $model step, PyTorch ($alloc allocator), $th thread(s)"
      flag=""; [ $alloc = tuned ] && flag="--tuned-allocator"
      $py bench/torch/bench_step.py --model $model --threads $th --batch "$batch" --steps "$steps" --warmup "$warm" $flag \
        --json "$tmp/torch_${model}_${alloc}_$r.json" | tail -2
    done
  done
done
done

fi

$py - "$src" "$out" "$gen_s" "$cc_s" "$repeats" <<'PY'
import json, os, statistics, sys
tmp, out, gen_s, cc_s, repeats = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
def load(name):
    p = os.path.join(tmp, name)
    return json.load(open(p)) if os.path.exists(p) else None
if tmp == "-":  # BENCH_RENDER_ONLY: the tables again from the last bench.json
    res = json.load(open(os.path.join(out, "bench.json")))
    gen_s, cc_s = res["compile"]["generate_s"], res["compile"]["cc_generated_s"]
    repeats = max(int(k.rsplit("_r", 1)[1]) for k in res["runs"] if "_r" in k)
else:
    res = {"compile": {"generate_s": gen_s, "cc_generated_s": cc_s}, "runs": {}}
    for f in sorted(os.listdir(tmp)):
        if f.endswith(".json"): res["runs"][f[:-5]] = load(f)
R = res["runs"]
def reps(k): return [R[f"{k}_r{i}"] for i in range(1, repeats + 1) if R.get(f"{k}_r{i}")]
def ms(k):  # the median of the repeats' median step times
    v = [r["median_ms"] for r in reps(k)]
    return statistics.median(v) if v else float("nan")
def rss(k):
    v = [r.get("peak_rss_mib") or r.get("peak_rss_MiB") or r.get("peak_rss") for r in reps(k)]
    return max(v) if v else float("nan")
res["median_of_repeats_ms"] = {k: ms(k) for k in sorted({f.rsplit("_r", 1)[0] for f in R})}
json.dump(res, open(os.path.join(out, "bench.json"), "w"), indent=1)
lines = ["# make bench", "",
         "Training step at batch 32 (forward, backward, clipping, AdamW), median over the timed steps after warm-up,",
         f"then the median over {repeats} repeats run interleaved with PyTorch's; GOMP_SPINCOUNT=1000 for both sides;",
         "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for both sides. Ratios > 1 mean reclf is faster.", "",
         "| model | threads | reclf ms | unfused ms | PyTorch plain ms | PyTorch tuned ms | vs plain | vs tuned | reclf RSS MiB | PyTorch RSS MiB |",
         "|---|---|---|---|---|---|---|---|---|---|"]
for model in ["reclf", "convirt"]:
    for th in [1, 2]:
        o, u = ms(f"ours_{model}_{th}"), ms(f"unfused_{model}_{th}") if model == "reclf" else float("nan")
        tp, tt = ms(f"torch_{model}_plain_{th}"), ms(f"torch_{model}_tuned_{th}")
        un = "—" if u != u else f"{u:.0f}"  # not measured for convirt
        lines.append(f"| {model} | {th} | {o:.0f} | {un} | {tp:.0f} | {tt:.0f} | {tp/o:.2f}x | {tt/o:.2f}x | {rss(f'ours_{model}_{th}'):.0f} | {rss(f'torch_{model}_tuned_{th}'):.0f} |")
o1, o2 = ms("ours_reclf_1"), ms("ours_reclf_2")
r = R.get("ours_reclf_2_r1") or {}
# the sgemm peak each 2-thread run measured beside its steps; the best one, so that a noisy
# moment on a shared machine does not flatter the share
peak = max([x.get("sgemm_gflops", 0) for x in reps("ours_reclf_2")] + [1])
lines += ["", f"Fused against unfused (2 threads): {ms('unfused_reclf_2')/o2:.2f}x. Two threads against one: {o1/o2:.2f}x.",
          f"Step FLOPs counted by the compiler: {r.get('step_gflop', 0):.2f} GFLOP; {r.get('step_gflop', 0)/o2*1e3:.0f} GFLOP/s at 2 threads, "
          f"{100*r.get('step_gflop', 0)/o2*1e3/peak:.0f}% of the sgemm peak (the best of the {len(reps('ours_reclf_2'))} 2-thread runs' own measurements: {peak:.0f} GFLOP/s).",
          f"`make generate` (all graphs): {gen_s:.2f} s; `cc -O3` of all of generated/, one file after another on one core: {cc_s:.1f} s.", "",
          "## Every kernel of the reclf step (2 threads), slowest first", "",
          "Each call site of the first 2-thread run. *Of peak*: for a GEMM-bound kernel (matrix products, convolutions),",
          "its GFLOP/s against bare `cblas_sgemm` at the shape m x n x k of its GEMM calls, measured in the same run with",
          "every thread running its own product at once, as the kernels run them (the convolutions' products are",
          "runtime/kernel_gemm.h's, not OpenBLAS's: above 100% they beat sgemm at that shape); for the rest, its",
          f"GB/s against a parallel memory copy measured in the same run ({r.get('copy_gbs', 0):.1f} GB/s).", "",
          "| ms | share | GFLOP/s | GB/s | of peak | against | kernel | node | graph line |", "|---|---|---|---|---|---|---|---|---|"]
ks = sorted((r.get("kernels") or []), key=lambda k: -k["ms"])
for k in ks:
    s = k["ms"] / 1e3
    gf, gb = (k["gflop"] / s, k["mb"] / 1e3 / s) if s else (0, 0)
    if k.get("gemm_peak_gflops"):
        share, against = 100 * gf / k["gemm_peak_gflops"], "sgemm {} x {} x {} ({:.0f} GFLOP/s)".format(*k["gemm"], k["gemm_peak_gflops"])
    else:
        share, against = 100 * gb / r.get("copy_gbs", 1), "copy"
    lines.append(f"| {k['ms']:.2f} | {100*k['ms']/o2:.1f}% | {gf:.1f} | {gb:.1f} | {share:.0f}% | {against} | {k['kernel']}{' (bwd)' if k['backward'] else ''} | `{k['node']}` | {k['source']} |")
open(os.path.join(out, "BENCH.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines[:12]))
PY
echo "written: $out/bench.json, $out/BENCH.md"
