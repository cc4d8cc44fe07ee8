#!/usr/bin/env python3
"""Compare two runs' metrics.jsonl step by step.

usage: compare_metrics.py A.jsonl B.jsonl TOL [--later TOL2] [--need KEY]...

Both files must log the same steps; loss and grad_norm must agree within relative TOL at the first
step (same parameters: only the order of float sums differs) and TOL2 (default TOL) at the later
ones (the parameters have drifted apart by float noise, amplified by Adam), and texts exactly. (Adam is invariant to a constant scale of a tensor's gradient, so equal
parameters alone would not catch, say, a gradient counted twice; the gradient norm before clipping
does.) --need KEY: every line of A must have KEY (e.g. allreduce_s in a run under mpirun).
"""
import json
import sys


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    argv = sys.argv[1:]
    opts = ("--need", "--later")
    need = [argv[i + 1] for i, a in enumerate(argv) if a == "--need"]
    later = [float(argv[i + 1]) for i, a in enumerate(argv) if a == "--later"]
    pos = [a for i, a in enumerate(argv) if a not in opts and (i == 0 or argv[i - 1] not in opts)]
    if len(pos) != 3:
        raise SystemExit(__doc__)
    a, b, tol0 = read(pos[0]), read(pos[1]), float(pos[2])
    tol_later = later[0] if later else tol0
    if [r["step"] for r in a] != [r["step"] for r in b] or not a:
        print(f"FAIL: steps differ: {[r['step'] for r in a]} vs {[r['step'] for r in b]}")
        return 1
    worst = 0.0
    for n, (ra, rb) in enumerate(zip(a, b)):
        tol = tol0 if n == 0 else tol_later
        for k in need:
            if k not in ra:
                print(f"FAIL: step {ra['step']} of {pos[0]} has no {k}")
                return 1
        if ra["texts"] != rb["texts"]:
            print(f"FAIL: step {ra['step']}: texts {ra['texts']} vs {rb['texts']}")
            return 1
        for k in ("loss", "grad_norm"):
            rel = abs(ra[k] - rb[k]) / max(abs(rb[k]), 1e-30)
            worst = max(worst, rel)
            if not rel <= tol:
                print(f"FAIL: step {ra['step']}: {k} {ra[k]!r} vs {rb[k]!r} (relative {rel:.3g} > {tol:g})")
                return 1
    print(f"ok: {len(a)} steps, loss and grad_norm within relative {worst:.3g} (tolerance {tol0:g}, later {tol_later:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
