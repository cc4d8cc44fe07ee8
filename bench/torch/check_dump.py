"""Cross-check the gradients of a debug-state dump against PyTorch (float64).

Check a dump written by our C side:
    /usr/bin/python3 bench/torch/check_dump.py --ckpt CKPT.safetensors --state STATE.safetensors --model reclf

Write a dump from PyTorch itself (random init with every parameter random, SRM's Wo included, and a
random batch), e.g. to test this checker or to feed the C side the same parameters and batch:
    /usr/bin/python3 bench/torch/check_dump.py --write-state STATE.safetensors --ckpt CKPT.safetensors \
        --model reclf --seed 1 [--batch 8] [--state-dtype float32|float64] [--hard-negatives side-swap]
(--ckpt is then an output). Round trip: write, then check the same pair of files.

Files (safetensors, see safetensors_np.py):
  CKPT   parameters named as SPEC 8b (`image.stem.weight`, `text.tok_emb`, `srm.Wq`, ...); any other
         tensor (`optim.*`, step counters, ...) is ignored. The vocabulary size, L and d come from
         the shapes of text.tok_emb / text.pos_emb.
  STATE  `batch.images` float [B,1,H,W] in [0,1] (before normalisation), `batch.tokens` int [B,L],
         `batch.word_mask` [B(+M),L-1] (any dtype, nonzero = valid), `loss` scalar, and
         `grad.<param name>` for each parameter; optional `batch.neg_tokens` int [M,L]: side-swap
         extra negative texts (SPEC 8a), which turn the loss into CE2n.

What is checked (exit status 1 if any fails, 0 otherwise). The reference is PyTorch in float64.
Because our side computes in float32, each limit is scaled by the error that PyTorch's own float32
run of the same step makes (measured here on every call: the same parameters and batch in float32):
  - loss: rel = |loss_dump - loss64| / max(|loss64|, 1) <= max(--loss-tol 1e-6, 10 x rel of float32);
  - word mask: the dumped mask equals the SPEC's (1 on real tokens at positions 1..L-1, 0 on
    [SEP]/[PAD]); the dumped mask is the one used for the forward pass either way;
  - per parameter: err = max|g_dump - g64| / scale, scale = max(max|g64|, 1e-4 * G), G the largest
    |gradient| over all parameters (so a parameter whose true gradient is ~0, like SRM's Wq/Wk/Wv
    when Wo = 0 or the attention key biases, is judged against the overall gradient size);
    err <= max(--tol 5e-4, --noise-factor 10 x err of the float32 PyTorch run).
  Also printed: relative L2 error ||g_dump - g64|| / ||g64|| ("-" where g64 is ~0).
  Why scaled limits: float32 noise depends on the batch. On B=8 random batches PyTorch's float32
  image-encoder gradients are off by up to 7e-4 (one batch) and 7e-3 (a side-swap batch with a
  12-id vocabulary) in this metric, through the GroupNorm backward and the cancelling B^2
  softmax terms, while the text-side gradients are ~1e-5 and the loss ~1e-7 relative. A single
  fixed limit loose enough for the first would miss real bugs in the second: GELU's erf form instead
  of the tanh form changes the loss by 7e-6 relative and text.blocks.*.fc1 by 1e-3 (both caught);
  an LN/GN eps of 1e-4 or tau1 = 0.11 give errors of 5e-2..9e-2 everywhere.
  A parameter of the model without `grad.<name>` in the dump fails, unless PyTorch's gradient is
  exactly zero (e.g. image.region_proj in convirt).
"""
import argparse
import copy
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reclf_torch as R  # noqa: E402
from safetensors_np import load, save  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description="check a debug-state dump against PyTorch")
    ap.add_argument("--ckpt", required=True, help="parameters (input; output with --write-state)")
    ap.add_argument("--state", help="debug-state file to check")
    ap.add_argument("--model", default="reclf", choices=R.VARIANTS)
    ap.add_argument("--tol", type=float, default=5e-4, help="floor of the gradient error limit (see doc)")
    ap.add_argument("--loss-tol", type=float, default=1e-6, help="floor of the relative loss limit")
    ap.add_argument("--noise-factor", type=float, default=10.0,
                    help="limit = max(floor, factor x error of PyTorch's own float32 run)")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every parameter, not only the worst")
    ap.add_argument("--write-state", metavar="OUT", help="write a PyTorch dump (and --ckpt) instead of checking")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--length", type=int, default=40)
    ap.add_argument("--vocab", type=int, default=200)
    ap.add_argument("--state-dtype", choices=["float32", "float64"], default="float32",
                    help="precision of the forward/backward that --write-state dumps")
    ap.add_argument("--hard-negatives", choices=["none", "side-swap"], default="none")
    ap.add_argument("--left-id", type=int, default=4)
    ap.add_argument("--right-id", type=int, default=5)
    return ap.parse_args()


def forward_backward(model, images, tokens, neg_tokens, word_mask):
    model.zero_grad(set_to_none=True)
    loss = model(images, tokens, neg_tokens=neg_tokens, word_mask=word_mask)
    loss.backward()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}
    return loss.detach(), grads


def write_state(args):
    torch.manual_seed(args.seed)
    model = R.RECLF(args.model, vocab_size=args.vocab, length=args.length, random_wo=True)
    images, tokens = R.random_batch(args.batch, args.size, args.length, args.vocab, seed=args.seed + 1000)
    neg = R.side_swap(tokens, args.left_id, args.right_id) if args.hard_negatives == "side-swap" else None
    all_tokens = tokens if neg is None else torch.cat([tokens, neg])
    wmask = R.word_mask_from_tokens(all_tokens)
    params = {n: p.detach().float().clone() for n, p in model.named_parameters()}
    dt = getattr(torch, args.state_dtype)
    model = model.to(dt)
    loss, grads = forward_backward(model, images.to(dt), tokens, neg, wmask)
    state = {"batch.images": images.float(), "batch.tokens": tokens.to(torch.int32),
             "batch.word_mask": wmask.to(torch.uint8), "loss": loss.reshape(())}
    if neg is not None:
        state["batch.neg_tokens"] = neg.to(torch.int32)
    state.update({f"grad.{n}": g for n, g in grads.items()})
    meta = {"model": args.model, "seed": args.seed, "dtype": args.state_dtype, "writer": "bench/torch/check_dump.py"}
    save(args.ckpt, params, metadata=meta)
    save(args.write_state, state, metadata=meta)
    print(f"wrote {args.ckpt} ({len(params)} parameters) and {args.write_state}: model {args.model}, "
          f"B={tokens.shape[0]} M={0 if neg is None else neg.shape[0]} L={tokens.shape[1]}, "
          f"{args.state_dtype}, loss {float(loss):.6f}")


def check(args):
    ckpt, _ = load(args.ckpt)
    state, meta = load(args.state)
    failures = []
    if "text.tok_emb" not in ckpt or "text.pos_emb" not in ckpt:
        sys.exit(f"{args.ckpt}: no text.tok_emb / text.pos_emb")
    vocab, d = ckpt["text.tok_emb"].shape
    length = ckpt["text.pos_emb"].shape[0]
    model = R.RECLF(args.model, vocab_size=vocab, length=length, d=d)
    own = model.state_dict()
    missing = [n for n in own if n not in ckpt]
    if missing:
        sys.exit(f"{args.ckpt}: missing parameters for {args.model}: {missing}")
    ignored = sorted(n for n in ckpt if n not in own)
    for n in own:
        if tuple(ckpt[n].shape) != tuple(own[n].shape):
            sys.exit(f"{args.ckpt}: {n} has shape {list(ckpt[n].shape)}, expected {list(own[n].shape)}")
    model.load_state_dict({n: torch.from_numpy(ckpt[n].astype(np.float64)) for n in own})
    model = model.double()

    for k in ("batch.images", "batch.tokens"):
        if k not in state:
            sys.exit(f"{args.state}: no {k}")
    images = torch.from_numpy(state["batch.images"].astype(np.float64))
    tokens = torch.from_numpy(state["batch.tokens"].astype(np.int64))
    neg = torch.from_numpy(state["batch.neg_tokens"].astype(np.int64)) if "batch.neg_tokens" in state else None
    all_tokens = tokens if neg is None else torch.cat([tokens, neg])
    spec_mask = R.word_mask_from_tokens(all_tokens)
    if "batch.word_mask" in state:
        wmask = torch.from_numpy(state["batch.word_mask"] != 0)
        if wmask.shape != spec_mask.shape:
            sys.exit(f"{args.state}: batch.word_mask is {list(wmask.shape)}, expected {list(spec_mask.shape)}")
        bad = int((wmask != spec_mask).sum())
        if bad:
            failures.append(f"word mask differs from the SPEC's at {bad} positions")
    else:
        print("note: no batch.word_mask in the state, using the SPEC's")
        wmask = spec_mask
    print(f"model {args.model}: B={tokens.shape[0]} M={0 if neg is None else neg.shape[0]} L={length} "
          f"vocab={vocab} d={d}; {len(own)} parameters" + (f", ignored {len(ignored)} other ckpt tensors" if ignored else "")
          + (f"; state metadata {meta}" if meta else ""))

    loss, grads = forward_backward(model, images, tokens, neg, wmask)
    model32 = copy.deepcopy(model).float()
    loss32, grads32 = forward_backward(model32, images.float(), tokens, neg, wmask)
    gmax = max(float(g.abs().max()) for g in grads.values())

    def rel_loss(x):
        return abs(x - float(loss)) / max(abs(float(loss)), 1.0)

    def scaled_err(gd, g):
        scale = max(float(g.abs().max()), 1e-4 * gmax)
        diff = float((gd - g).abs().max())
        return diff / scale if scale > 0 else diff

    if "loss" in state:
        ld = float(np.asarray(state["loss"]).reshape(-1)[0])
        rel, lim = rel_loss(ld), max(args.loss_tol, args.noise_factor * rel_loss(float(loss32)))
        print(f"loss: dump {ld:.8f} torch64 {float(loss):.8f} diff {ld - float(loss):+.3e} "
              f"(rel {rel:.2e}, limit {lim:.1e}; torch float32 rel {rel_loss(float(loss32)):.1e})")
        if not rel <= lim:
            failures.append(f"loss rel diff {rel:.2e} > {lim:.1e}")
    else:
        failures.append("no loss in the state")

    rows = []
    for n, g in grads.items():
        key = f"grad.{n}"
        if key not in state:
            if float(g.abs().max()) == 0.0:
                rows.append((n, 0.0, 0.0, 0.0, 0.0, "missing (torch grad is 0)"))
            else:
                rows.append((n, float("inf"), float("inf"), 0.0, float(g.abs().max()), "MISSING"))
                failures.append(f"{key} missing")
            continue
        gd = torch.from_numpy(state[key].astype(np.float64))
        if gd.shape != g.shape:
            failures.append(f"{key} has shape {list(gd.shape)}, expected {list(g.shape)}")
            continue
        err = scaled_err(gd, g)
        lim = max(args.tol, args.noise_factor * scaled_err(grads32[n].double(), g))
        tiny = float(g.abs().max()) < 1e-4 * gmax
        l2 = float("nan") if tiny else float((gd - g).norm()) / float(g.norm())
        rows.append((n, err, lim, l2, float(g.abs().max()), "FAIL" if not err <= lim else ""))
        if not err <= lim:
            failures.append(f"{n}: err {err:.2e} > {lim:.1e}")
    extra = sorted(k for k in state if k.startswith("grad.") and k[5:] not in grads)
    if extra:
        print(f"note: {len(extra)} grad.* tensors for parameters {args.model} does not have: {extra[:6]}...")

    rows.sort(key=lambda r: -r[1] / r[2] if r[2] else -r[1])
    show = rows if args.verbose else rows[:12]
    print(f"{'parameter':36s} {'max err (scaled)':>16s} {'limit':>8s} {'rel L2':>10s} {'max|g64|':>10s}")
    for n, err, lim, l2, gm, note in show:
        l2s = "-" if l2 != l2 else f"{l2:.3e}"
        print(f"{n:36s} {err:16.3e} {lim:8.1e} {l2s:>10s} {gm:10.3e} {note}")
    if not args.verbose and len(rows) > len(show):
        print(f"... {len(rows) - len(show)} more parameters with smaller errors (-v to list all)")
    worst = rows[0] if rows else None
    if failures:
        print(f"FAIL ({len(failures)}): " + "; ".join(failures[:10]))
        return 1
    print(f"PASS: worst parameter {worst[0]} err {worst[1]:.2e} (limit {worst[2]:.1e})")
    return 0


def main():
    args = parse_args()
    if args.write_state:
        write_state(args)
        return 0
    if not args.state:
        sys.exit("need --state (or --write-state)")
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
