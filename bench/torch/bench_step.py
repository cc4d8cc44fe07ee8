"""Time one full RECLF training step in PyTorch (the reference for `make bench`).

    /usr/bin/python3 bench/torch/bench_step.py --model reclf --threads 1 [--json out.json]
    /usr/bin/python3 bench/torch/bench_step.py --model convirt --threads 2 --tuned-allocator
    /usr/bin/python3 bench/torch/bench_step.py --data batch.safetensors ...   # same batch as the C side

(/usr/bin/python3: Debian's python3-torch 1.13; the pyenv python3 first in PATH has no torch.)

A step is what training does (SPEC 8/8b): forward, backward, global grad-norm clip at 1.0, AdamW
(0.9, 0.999, eps 1e-8, lr 1e-3, weight decay 0.01 on Linear/conv weights and SRM/IRM matrices only)
and the warm-up/cosine LR schedule. Default data: batch 32, 64x64 images uniform in [0,1], L = 40,
vocabulary 200 ids, report lengths uniform in 15..40 tokens including [CLS] and [SEP], seeded.
`--data FILE.safetensors` takes `images` (float [B,1,H,W] in [0,1], before normalisation) and
`tokens` (int32 [B,L]) from a file instead (`batch.images` / `batch.tokens`, as in a debug-state
file, are accepted too). `--write-data FILE` writes the default random batch in that format.

Reports the median step time over --steps steps (default 10) after --warmup steps (default 3),
p10/p90, and the peak RSS (getrusage ru_maxrss, MiB). Prints one line and, with --json FILE, writes
a JSON object.

--tuned-allocator re-executes the script with glibc malloc tuned so that freed activations stay in
the heap instead of going back to the kernel: MALLOC_MMAP_THRESHOLD_=10000000000 (no allocation
below 10 GB is served by its own mmap, so large tensors come from the heap and are reused) and
MALLOC_TRIM_THRESHOLD_=10000000000 (the heap top is never trimmed). glibc 2.36 (Debian 12) accepts
these values: a 40 MiB malloc then comes from the heap (checked with mallinfo2; the JSON records
the heap/mmap sizes at the end of the run). Older glibc versions silently ignore an mmap threshold
above 32 MiB (HEAP_MAX_SIZE/2), which would leave the 128 KiB default with the dynamic adjustment
turned off by the trim setting: check `malloc.mmapped_mib` in the JSON if you run elsewhere.
OPENBLAS_* variables in the environment are left as they are and recorded in the JSON.
"""
import argparse
import ctypes
import json
import os
import platform
import resource
import statistics
import sys
import time

TUNED_ENV = {"MALLOC_MMAP_THRESHOLD_": "10000000000", "MALLOC_TRIM_THRESHOLD_": "10000000000"}
MARK = "RECLF_BENCH_TUNED_CHILD"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="reclf",
                    choices=["reclf", "reclf-nosrm", "reclf-noirm", "gloria", "convirt"])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=64, help="image side")
    ap.add_argument("--length", type=int, default=40, help="text length L")
    ap.add_argument("--vocab", type=int, default=200, help="vocabulary size incl. the 4 special ids")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (median over these)")
    ap.add_argument("--data", help="safetensors file with images [B,1,H,W] and tokens [B,L]")
    ap.add_argument("--write-data", help="write the random batch to this safetensors file and exit")
    ap.add_argument("--hard-negatives", choices=["none", "side-swap"], default="none")
    ap.add_argument("--left-id", type=int, default=4, help="token id of 'left' for side-swap")
    ap.add_argument("--right-id", type=int, default=5, help="token id of 'right' for side-swap")
    ap.add_argument("--reassoc", action="store_true",
                    help="cheaper association of the SRM/IRM d x d products (same math)")
    ap.add_argument("--tuned-allocator", action="store_true",
                    help="re-exec with MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ = 1e10")
    ap.add_argument("--json", help="write the result as JSON to this file")
    return ap.parse_args()


def malloc_info():
    """Heap (arena) and mmapped bytes of glibc malloc right now, in MiB (None if unavailable)."""
    try:
        libc = ctypes.CDLL("libc.so.6")

        class MI2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in
                        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
        libc.mallinfo2.restype = MI2
        mi = libc.mallinfo2()
        return {"heap_mib": round(mi.arena / 2**20, 1), "mmapped_mib": round(mi.hblkhd / 2**20, 1),
                "mmapped_chunks": mi.hblks}
    except (OSError, AttributeError):
        return None


def load_batch(path):
    import numpy as np
    import torch
    from safetensors_np import load
    t, _ = load(path)
    im = t.get("images", t.get("batch.images"))
    tk = t.get("tokens", t.get("batch.tokens"))
    if im is None or tk is None:
        sys.exit(f"{path}: needs tensors images/tokens (or batch.images/batch.tokens)")
    return torch.from_numpy(np.asarray(im, dtype=np.float32)), torch.from_numpy(tk.astype(np.int64))


def main():
    args = parse_args()
    if args.tuned_allocator and os.environ.get(MARK) != "1":
        env = dict(os.environ, **TUNED_ENV, **{MARK: "1"})
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable] + sys.argv, env)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np
    import torch
    import reclf_torch as R

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(args.seed)

    if args.data:
        images, tokens = load_batch(args.data)
    else:
        images, tokens = R.random_batch(args.batch, args.size, args.length, args.vocab, seed=args.seed)
    if args.write_data:
        from safetensors_np import save
        save(args.write_data, {"images": images, "tokens": tokens.to(torch.int32)},
             metadata={"seed": args.seed, "vocab": args.vocab})
        print(f"wrote {args.write_data}: images {list(images.shape)} tokens {list(tokens.shape)}")
        return
    B, L = tokens.shape
    vocab = max(args.vocab, int(tokens.max()) + 1)
    neg = R.side_swap(tokens, args.left_id, args.right_id) if args.hard_negatives == "side-swap" else None

    model = R.RECLF(args.model, vocab_size=vocab, length=L, reassoc=args.reassoc)
    total = args.warmup + args.steps
    opt, sched = R.make_optimizer(model, steps=total)

    times, losses = [], []
    for s in range(total):
        t0 = time.perf_counter()
        loss, gnorm = R.train_step(model, opt, sched, images, tokens, neg)
        dt = time.perf_counter() - t0
        losses.append(float(loss))
        if s >= args.warmup:
            times.append(dt * 1e3)

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB
    res = {
        "impl": "pytorch",
        "model": args.model,
        "threads": args.threads,
        "batch": B,
        "image_size": int(images.shape[-1]),
        "length": L,
        "vocab": vocab,
        "hard_negatives": args.hard_negatives,
        "extra_texts": 0 if neg is None else int(neg.shape[0]),
        "reassoc": args.reassoc,
        "data": args.data or f"random(seed={args.seed})",
        "warmup": args.warmup,
        "steps": args.steps,
        "median_ms": round(statistics.median(times), 2),
        "p10_ms": round(float(np.percentile(times, 10)), 2),
        "p90_ms": round(float(np.percentile(times, 90)), 2),
        "min_ms": round(min(times), 2),
        "times_ms": [round(t, 2) for t in times],
        "peak_rss_mib": round(rss, 1),
        "loss_first": round(losses[0], 5),
        "loss_last": round(losses[-1], 5),
        "torch_version": torch.__version__,
        "allocator": ("glibc-tuned (" + " ".join(f"{k}={v}" for k, v in TUNED_ENV.items()) + ")")
        if os.environ.get(MARK) == "1" else "glibc-default",
        "malloc": malloc_info(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "GOMP_", "MALLOC_"))},
        "python": platform.python_version(),
        "host_cpus": os.cpu_count(),
    }
    print(f"pytorch {res['model']:12s} threads={res['threads']} batch={B} alloc={'tuned' if os.environ.get(MARK) == '1' else 'default':7s} "
          f"median={res['median_ms']:.1f} ms p10={res['p10_ms']:.1f} p90={res['p90_ms']:.1f} "
          f"rss={res['peak_rss_mib']:.0f} MiB loss {res['loss_first']:.4f}->{res['loss_last']:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
