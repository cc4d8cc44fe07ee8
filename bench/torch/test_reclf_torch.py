"""Self-tests of the PyTorch reference (bench/torch/reclf_torch.py).

    /usr/bin/python3 bench/torch/test_reclf_torch.py

Checks, in float64 on a small batch: the batched local matching against a plain per-pair loop
written from SPEC 3-6; reassoc=True equals the literal form; a report with no words gives no NaN;
side-swap negatives (CE2n) against a loop; torch.autograd.gradcheck on a tiny model; the AdamW
weight-decay split and the LR schedule of SPEC 8b.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reclf_torch as R  # noqa: E402

torch.set_default_dtype(torch.float64)


def nrm(x):
    return x / max(float(x.norm()), 1e-6)


def loop_local(model, V, W, t_g, wmask):
    """Lm[r, i] computed pair by pair, word by word, straight from SPEC 3-5 and 7."""
    T, B, K, d = W.shape[0], V.shape[0], W.shape[1], W.shape[2]
    Lm = torch.zeros(T, B)
    for r in range(T):
        valid = [k for k in range(K) if wmask[r, k]]
        if hasattr(model, "srm"):
            srm = model.srm
            A = torch.zeros(K, K)
            for k in range(K):
                if valid:
                    e = torch.stack([(W[r, k] @ srm.Wq) @ (W[r, k2] @ srm.Wk) / math.sqrt(d) for k2 in valid])
                    A[k, valid] = torch.softmax(e, 0)
        for i in range(B):
            m = torch.zeros(K, d)
            cos = torch.zeros(K)
            for k in range(K):
                a = torch.softmax(torch.stack([nrm(W[r, k]) @ nrm(V[i, j]) for j in range(V.shape[1])]) / R.TAU1, 0)
                c = (a[:, None] * V[i]).sum(0)
                m[k] = nrm(W[r, k]) * nrm(c)
                cos[k] = m[k].sum()
            if model.variant == "gloria":
                S = torch.logsumexp(R.TAU2 * cos[valid], 0) / R.TAU2 if valid else torch.tensor(0.0)
                Lm[r, i] = R.GLORIA_SCALE * S
                continue
            m2 = m.clone()
            if hasattr(model, "srm"):
                for k in range(K):
                    m2[k] = m[k] + sum((A[k, k2] * (m[k2] @ model.srm.Wv) for k2 in range(K)), torch.zeros(d)) @ model.srm.Wo
            s = m2.sum(1)
            if hasattr(model, "irm"):
                e = [(t_g[r] @ model.irm.Wa) @ (m2[k] @ model.irm.Wb) / math.sqrt(d) for k in valid]
                beta = torch.softmax(torch.stack(e), 0) if valid else torch.zeros(0)
            else:
                beta = torch.full((len(valid),), 1.0 / max(len(valid), 1))
            Lm[r, i] = (beta * s[valid]).sum() / R.TAU_L
    return Lm


def check(name, ok):
    print(("ok   " if ok else "FAIL ") + name)
    if not ok:
        check.failed = True


check.failed = False


def main():
    torch.manual_seed(0)
    B, L = 4, 12
    images, tokens = R.random_batch(B, size=64, length=L, vocab_size=30, seed=3, min_len=3)
    tokens[1] = torch.tensor([R.CLS, R.SEP] + [R.PAD] * (L - 2))      # a report with no words
    tokens[2, 4] = 5                                                    # make sure a side word occurs
    images = images.double()
    for v in R.VARIANTS:
        torch.manual_seed(1)
        model = R.RECLF(v, vocab_size=30, length=L, random_wo=True).double()
        with torch.no_grad():
            V, v_g = model.image(images)
            t_g, W = model.text(tokens)
            wm = R.word_mask_from_tokens(tokens)
            loss, G, Lm = model(images, tokens, return_parts=True)
        check(f"{v}: finite loss {float(loss):.4f}", bool(torch.isfinite(loss)))
        if v == "convirt":
            check(f"{v}: loss = CE2(G)", abs(float(loss - R.ce2(G))) < 1e-12)
            continue
        ref = loop_local(model, V, W, t_g, wm)
        check(f"{v}: batched Lm == per-pair loop (max diff {float((Lm - ref).abs().max()):.2e})",
              torch.allclose(Lm, ref, atol=1e-10, rtol=1e-10))
        model.reassoc = True
        with torch.no_grad():
            _, _, Lm2 = model(images, tokens, return_parts=True)
        check(f"{v}: reassoc same Lm (diff {float((Lm2 - Lm).abs().max()):.1e})", bool(torch.allclose(Lm, Lm2, rtol=1e-12, atol=1e-12)))
        model.reassoc = False
        # gradients finite with an all-masked report
        model.zero_grad()
        model(images, tokens).backward()
        check(f"{v}: finite grads with an empty report",
              all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None))

    # side-swap: CE2n with the extra texts against a direct computation
    neg = R.side_swap(tokens, 5, 6)
    check(f"side_swap picks the reports naming a side ({neg.shape[0]} of {B})",
          neg.shape[0] == int(((tokens == 5) | (tokens == 6)).any(1).sum()) and bool((neg == 6).any()))
    model = R.RECLF("reclf", vocab_size=30, length=L, random_wo=True).double()
    with torch.no_grad():
        loss, G, Lm = model(images, tokens, neg_tokens=neg, return_parts=True)
        tgt = torch.arange(B)
        ref = sum(0.5 * (F.cross_entropy(X[:B], tgt) + F.cross_entropy(X.t(), tgt)) for X in (G, Lm))
        check(f"side-swap: G is {tuple(G.shape)}, CE2n matches", G.shape == (B + neg.shape[0], B)
              and abs(float(loss - ref)) < 1e-12)

    # autograd gradcheck through the whole model on a tiny batch (image 16x16 -> 2x2 regions)
    torch.manual_seed(2)
    model = R.RECLF("reclf", vocab_size=30, length=6, d=16, random_wo=True).double()
    im, tk = R.random_batch(2, size=16, length=6, vocab_size=30, seed=4, min_len=3)
    params = [p for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]
    sel = [names.index(n) for n in ("srm.Wq", "srm.Wo", "irm.Wb", "text.tok_emb", "image.stem.weight", "image.stage3.res.gn2.weight",
                                     "text.blocks.1.q.weight", "text.ln_f.bias")]

    def f_functional(*ps):
        # differentiate w.r.t. the selected parameters by swapping plain tensors in for them
        mods = []
        for j, p in zip(sel, ps):
            mod_name, _, attr = names[j].rpartition(".")
            mod = model.get_submodule(mod_name)
            mods.append((mod, attr, mod._parameters[attr]))
            del mod._parameters[attr]
            setattr(mod, attr, p)
        try:
            return model(im.double(), tk)
        finally:
            for mod, attr, p in mods:
                delattr(mod, attr)
                mod._parameters[attr] = p

    inputs = tuple(params[j].detach().clone().requires_grad_(True) for j in sel)
    ok = torch.autograd.gradcheck(f_functional, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
    check("gradcheck (8 parameters of the d=16 model) on a 2-pair batch", ok)

    # optimizer set-up
    model = R.RECLF("reclf")
    dec = R.decay_names(model)
    nodec = {n for n, _ in model.named_parameters()} - dec
    check("no decay on biases, norms, embeddings",
          all(n.endswith(".bias") or n in ("text.tok_emb", "text.pos_emb") or
              any(t in n for t in ("gn", "ln")) for n in nodec) and "srm.Wo" in dec and "text.tok_emb" in nodec)
    check("schedule: 10-step run warms up its whole length",
          [round(R.lr_factor(t, 10), 3) for t in range(10)] == [round((t + 1) / 10, 3) for t in range(10)])
    f2000 = [R.lr_factor(t, 2000) for t in (0, 99, 100, 1999)]
    check(f"schedule 2000 steps: {['%.3g' % x for x in f2000]}",
          abs(f2000[0] - 0.01) < 1e-12 and f2000[1] == 1.0 and f2000[2] == 1.0 and abs(f2000[3]) < 1e-12)
    print("FAILED" if check.failed else "all passed")
    sys.exit(1 if check.failed else 0)


if __name__ == "__main__":
    main()
