#!/usr/bin/env python3
"""Compare the parameters of two reclf checkpoints (safetensors), numpy-free.

usage: compare.py A.safetensors B.safetensors TOL [--exact] [--moments]

Over all parameters (every tensor but the AdamW moments optim.m.* / optim.v.*) taken as one vector:
    rel = ||a - b||_2 / ||b||_2
must be <= TOL; with --exact every tensor must also be bitwise equal. Both files must hold the same
tensors, shapes and training step. Also printed, for information: the worst tensor by
max_i |a_i - b_i| / max_i |b_i|. That per-tensor figure is not the criterion because AdamW's first
updates are close to lr * sign(g): an element whose gradient is a near-cancelling sum (group-norm
biases of the image encoder) moves by up to lr either way when the same sum is merely added in
another order (16 + 16 samples on two ranks instead of 32 in one GEMM), so it sits around 1e-3
even when the two runs compute the same function.
--moments compares AdamW's first moments optim.m.* instead, tensor by tensor, with the worst
||a - b||_2 / max(||b||_2, 1e-3 ||all of b||_2) of any tensor as the criterion: after one step
m = (1 - beta1) * clipped gradient, so this compares two runs' first gradients directly (Adam is
not in the way yet). The floor keeps tensors whose gradient is float noise around an exact zero
(attention key biases: softmax ignores a constant added to every key) from deciding alone.
Exit 0 when within tolerance, 1 otherwise.
"""
import array
import json
import struct
import sys


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    tensors = {}
    for name, h in header.items():
        if h["dtype"] != "F32":
            raise SystemExit(f"{path}: {name} is {h['dtype']}, expected F32")
        lo, hi = h["data_offsets"]
        a = array.array("f")
        a.frombytes(data[base + lo:base + hi])
        if sys.byteorder != "little":
            a.byteswap()
        tensors[name] = (h["shape"], a)
    return tensors, meta


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    exact = "--exact" in sys.argv
    moments = "--moments" in sys.argv
    if len(args) != 3:
        raise SystemExit(__doc__)
    ta, ma = load(args[0])
    tb, mb = load(args[1])
    tol = float(args[2])
    if ma.get("step") != mb.get("step"):
        print(f"FAIL: steps differ: {ma.get('step')} vs {mb.get('step')}")
        return 1
    pick = (lambda k: k.startswith("optim.m.")) if moments else (lambda k: not k.startswith("optim."))
    names = [k for k in ta if pick(k)]
    if not names or sorted(names) != sorted(k for k in tb if pick(k)):
        print("FAIL: the checkpoints hold different parameters")
        return 1
    worst, worst_name, n_diff, d2, b2, worst_l2 = -1.0, "", 0, 0.0, 0.0, 0.0
    floor = 1e-3 * sum(sum(y * y for y in tb[k][1]) for k in names) ** 0.5 if moments else 0.0
    for name in names:
        (sa, a), (sb, b) = ta[name], tb[name]
        if sa != sb:
            print(f"FAIL: {name}: shape {sa} vs {sb}")
            return 1
        tb2 = sum(y * y for y in b)
        b2 += tb2
        if a == b:
            continue
        n_diff += 1
        td2 = sum((x - y) * (x - y) for x, y in zip(a, b))
        d2 += td2
        scale = max(tb2 ** 0.5, floor)
        tl2 = td2 ** 0.5 / scale if scale > 0 else float("inf")
        if tl2 != tl2 or tl2 > worst_l2:
            worst_l2 = float("inf") if tl2 != tl2 else tl2
            if moments:
                worst_name = name
        d = max(abs(x - y) for x, y in zip(a, b))
        scale = max(abs(y) for y in b)
        rel_t = d / scale if scale > 0 else float("inf")
        if rel_t != rel_t or rel_t > worst:
            worst = float("inf") if rel_t != rel_t else rel_t
            if not moments:
                worst_name = name
    if moments:
        ok = worst_l2 <= tol and (not exact or n_diff == 0)
        print(f"{'ok' if ok else 'FAIL'}: {len(names)} first moments (gradients) at step {ma.get('step')}: worst "
              f"tensor relative difference {worst_l2:.3g}" + (f" in {worst_name}" if n_diff else "") +
              f" (tolerance {tol:g}{', exact' if exact else ''}); {n_diff} tensors not bitwise equal")
        return 0 if ok else 1
    rel = (d2 / b2) ** 0.5 if b2 > 0 else (0.0 if d2 == 0 else float("inf"))
    ok = rel <= tol and (not exact or n_diff == 0)
    print(f"{'ok' if ok else 'FAIL'}: {len(names)} parameters at step {ma.get('step')}: relative difference "
          f"{rel:.3g} (tolerance {tol:g}{', exact' if exact else ''}); {n_diff} tensors not bitwise equal"
          + (f", worst max|a-b|/max|b| {worst:.3g} in {worst_name}" if n_diff else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
