#!/usr/bin/python3
"""Helpers of `make experiments` (experiments/run.sh), standard library only.

  results.py ckpt-step CKPT            print "<step> <config steps> <config batch> <model>" of a checkpoint
  results.py check-floor CKPT          fail unless the floor checkpoint holds SRM's Wo = 0 (SPEC 8:
                                       initial value) and was trained with lr 0, i.e. is the init
  results.py aggregate RUNS OUT ...    results/RESULTS.md, results.json, gnuplot data, scripts and PNGs

Aggregation reads RUNS/<variant>-<hn>-s<seed>/{eval.json,metrics.jsonl}; the floor is
RUNS/random-s<seed>. Numbers are reported as measured: mean and sample std (n - 1) over seeds.
"""
import json
import math
import os
import shutil
import struct
import subprocess
import sys


# ---------------------------------------------------------------- checkpoints

def read_safetensors_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), 8 + n


def ckpt_step(path):
    h, _ = read_safetensors_header(path)
    meta = h.get("__metadata__", {})
    cfg = json.loads(meta.get("config", "{}"))
    print(meta.get("step", "0"), cfg.get("steps", 0), cfg.get("batch", 0), meta.get("model", "?"))


def check_floor(path):
    """The floor is `train --steps 1 --lr 0`: AdamW with lr 0 has decay factor 1 - 0*wd = 1 and step
    size 0, so parameters keep their initial values. Check what can be checked from the file: the
    run's lr is 0 and SRM's Wo, zero at initialisation (SPEC 8) and the first to move otherwise
    (SPEC 8c), is still exactly zero."""
    h, off = read_safetensors_header(path)
    cfg = json.loads(h.get("__metadata__", {}).get("config", "{}"))
    if cfg.get("lr") != 0:
        sys.exit("check-floor: %s was trained with lr %r, not 0" % (path, cfg.get("lr")))
    t = h.get("srm.Wo")
    if t is None:
        sys.exit("check-floor: %s has no srm.Wo (the floor should be a reclf checkpoint)" % path)
    a, b = t["data_offsets"]
    with open(path, "rb") as f:
        f.seek(off + a)
        data = f.read(b - a)
    if any(data):
        sys.exit("check-floor: %s: srm.Wo is not all zero, so parameters moved" % path)
    print("floor %s: lr 0, srm.Wo all zero (initial parameters)" % path)


# ---------------------------------------------------------------- metrics

FRACS = ["1%", "10%", "100%"]


def get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or d.get(k) is None:
            return None
        d = d[k]
    return d


def metrics_of(ev):
    """Flat {metric key: value} of one eval.json (None when a task or score does not apply)."""
    m = {}
    m["zs.macro_auroc"] = get(ev, "zeroshot", "macro_auroc")
    m["zs.acc_5x200"] = get(ev, "zeroshot", "accuracy")
    for f in FRACS:
        m["probe.auroc_" + f] = get(ev, "probe", "fractions", f, "macro_auroc")
    for s in ["global", "local", "combined"]:
        for d in ["i2t", "t2i"]:
            for k in ["R@1", "R@5", "R@10", "P@1", "P@5", "P@10"]:
                m["ret.%s.%s.%s" % (s, d, k)] = get(ev, "retrieval", s, d, k)
        m["bind.%s.mirror" % s] = get(ev, "retrieval", s, "binding_mirror")
        m["bind.%s.flip" % s] = get(ev, "retrieval", s, "binding_flip")
    for f in FRACS:
        m["seg.dice_" + f] = get(ev, "seg", "dice", f)
    return m


def mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None, 0
    mu = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mu) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return mu, sd, len(xs)


def fmt(ms, want=0):
    """mean ± std; "(n=k)" when only k of the `want` seeds gave a value"""
    mu, sd, n = ms
    if mu is None:
        return "—"
    s = "%.3f" % mu if sd is None else "%.3f ± %.3f" % (mu, sd)
    return s + (" (n=%d)" % n if 0 < n < want else "")


# tables of RESULTS.md: (title, [(column header, metric key)])
TABLES = [
    ("Zero-shot classification (test split; macro AUROC over 5 findings, accuracy on 5×200)",
     [("macro AUROC", "zs.macro_auroc"), ("5×200 acc", "zs.acc_5x200")]),
    ("Linear probe (frozen image encoder, macro AUROC)",
     [(f + " labels", "probe.auroc_" + f) for f in FRACS]),
    ("Retrieval, combined score ½(G + Lm) (G alone for convirt): exact-pair recall",
     [("i2t R@1", "ret.combined.i2t.R@1"), ("i2t R@5", "ret.combined.i2t.R@5"), ("i2t R@10", "ret.combined.i2t.R@10"),
      ("t2i R@1", "ret.combined.t2i.R@1"), ("t2i R@5", "ret.combined.t2i.R@5"), ("t2i R@10", "ret.combined.t2i.R@10")]),
    ("Retrieval, combined score: precision by label match",
     [("i2t P@1", "ret.combined.i2t.P@1"), ("i2t P@5", "ret.combined.i2t.P@5"), ("i2t P@10", "ret.combined.i2t.P@10"),
      ("t2i P@1", "ret.combined.t2i.P@1"), ("t2i P@5", "ret.combined.t2i.P@5"), ("t2i P@10", "ret.combined.t2i.P@10")]),
    ("Retrieval, global score G only: recall and precision",
     [("i2t R@1", "ret.global.i2t.R@1"), ("i2t R@10", "ret.global.i2t.R@10"), ("t2i R@1", "ret.global.t2i.R@1"),
      ("t2i R@10", "ret.global.t2i.R@10"), ("i2t P@1", "ret.global.i2t.P@1"), ("t2i P@1", "ret.global.t2i.P@1")]),
    ("Retrieval, local score Lm only: recall and precision",
     [("i2t R@1", "ret.local.i2t.R@1"), ("i2t R@10", "ret.local.i2t.R@10"), ("t2i R@1", "ret.local.t2i.R@1"),
      ("t2i R@10", "ret.local.t2i.R@10"), ("i2t P@1", "ret.local.i2t.P@1"), ("t2i P@1", "ret.local.t2i.P@1")]),
    ("Binding accuracy (own report above its mirror / above its one-side flip; chance 0.5)",
     [("global mirror", "bind.global.mirror"), ("global flip", "bind.global.flip"),
      ("local mirror", "bind.local.mirror"), ("local flip", "bind.local.flip"),
      ("combined mirror", "bind.combined.mirror"), ("combined flip", "bind.combined.flip")]),
    ("Segmentation (U-Net decoder on the frozen encoder, Dice on the test images)",
     [(f + " masks", "seg.dice_" + f) for f in FRACS]),
]

# the claim of SPEC 10, metric by metric: reclf against each of these (higher is better everywhere)
CLAIM_KEYS = ["zs.macro_auroc", "zs.acc_5x200"] + ["probe.auroc_" + f for f in FRACS] + \
    ["ret.combined.%s.%s" % (d, k) for d in ["i2t", "t2i"] for k in ["R@1", "R@5", "R@10", "P@1", "P@5", "P@10"]] + \
    ["bind.combined.mirror", "bind.combined.flip"] + ["seg.dice_" + f for f in FRACS]
RIVALS = ["gloria", "convirt", "reclf-nosrm", "reclf-noirm"]

# bar charts: (file stem, title, [(label, metric key)], y range)
CHARTS = [
    ("zeroshot", "Zero-shot classification", [("macro AUROC", "zs.macro_auroc"), ("5x200 accuracy", "zs.acc_5x200")], "[0:1]"),
    ("probe", "Linear probe, macro AUROC", [(f + " labels", "probe.auroc_" + f) for f in FRACS], "[0.4:1]"),
    ("retrieval", "Retrieval, combined score",
     [(d + " " + k, "ret.combined.%s.%s" % (d, k)) for d in ["i2t", "t2i"] for k in ["R@1", "R@5", "R@10"]], "[0:*]"),
    ("precision", "Retrieval precision by label match, combined score",
     [(d + " " + k, "ret.combined.%s.%s" % (d, k)) for d in ["i2t", "t2i"] for k in ["P@1", "P@5", "P@10"]], "[0:*]"),
    ("binding", "Binding accuracy (chance 0.5)",
     [(s + " " + b, "bind.%s.%s" % (s, b)) for s in ["global", "local", "combined"] for b in ["mirror", "flip"]], "[0.3:1]"),
    ("segmentation", "Segmentation Dice", [(f + " masks", "seg.dice_" + f) for f in FRACS], "[0:*]"),
]


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_losses(path):
    """{step: loss} of one metrics.jsonl (the last line of a step wins, so a resumed run is fine)."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if "step" in r and "loss" in r:
                    out[int(r["step"])] = float(r["loss"])
    except OSError:
        pass
    return out


def series_name(v, h):
    return v if v == "random" else "%s %s" % (v, h)


def aggregate(runs, out, variants, hns, seeds, steps, batch, eval_args, command):
    os.makedirs(os.path.join(out, "plots"), exist_ok=True)
    series = [("random", "none")] + [(v, h) for h in hns for v in variants]
    table = {}      # (v, h) -> {metric: (mean, std, n)}
    runs_info = {}  # (v, h) -> list of (seed, status)
    per_seed = {}
    for v, h in series:
        evs = []
        info = []
        for s in seeds:
            d = os.path.join(runs, "random-s%s" % s if v == "random" else "%s-%s-s%s" % (v, h, s))
            ev = load_json(os.path.join(d, "eval.json"))
            if ev is None:
                info.append((s, "missing"))
                continue
            evs.append((s, ev))
            info.append((s, "step %s" % ev.get("step")))
        runs_info[(v, h)] = info
        ms = [metrics_of(ev) for _, ev in evs]
        per_seed["%s|%s" % (v, h)] = {str(s): metrics_of(ev) for s, ev in evs}
        keys = set(k for m in ms for k in m)
        table[(v, h)] = {k: mean_std([m.get(k) for m in ms]) for k in keys}

    present = [(v, h) for v, h in series if any(st.startswith("step") for _, st in runs_info[(v, h)])]

    # ---- RESULTS.md
    L = []
    L.append("# Experiments: SPEC §10 on SynthCXR\n")
    L.append("Made by:\n\n```\n%s\n```\n" % command)
    L.append("- Step budget: **%s steps at batch %s** for every variant (same schedule, SPEC §8b)." % (steps, batch))
    L.append("- Seeds: %s (training seed: initialisation and data order). Evaluation always on the "
             "SynthCXR test split of data seed 1, with `bin/reclf eval --task all %s`." % (" ".join(seeds), eval_args))
    sizes = next((ev for ev in (load_json(os.path.join(runs, d, "eval.json")) for d in sorted(os.listdir(runs))
                                if os.path.isdir(os.path.join(runs, d))) if ev), None) if os.path.isdir(runs) else None
    if sizes:
        L.append("- Evaluation sizes (from the eval.json files): zero-shot on %s test images, 5×200-style accuracy on %s "
                 "images; probe pool %s training images, tested on %s; retrieval pool %s (%s mirror and %s flip binding "
                 "cases); segmentation %s decoder steps per fraction, Dice on %s test images." % (
                     get(sizes, "zeroshot", "n_test"), get(sizes, "zeroshot", "n_balanced"), get(sizes, "probe", "pool"),
                     get(sizes, "probe", "n_test"), get(sizes, "retrieval", "pool"), get(sizes, "retrieval", "n_mirror"),
                     get(sizes, "retrieval", "n_flip"), get(sizes, "seg", "steps"), get(sizes, "seg", "n_test")))
    L.append("- Cells: mean ± sample standard deviation over the seeds that finished (no ± when only one did); "
             "— where a score does not exist (convirt has no local score) or no run finished.")
    L.append("- `random`: the floor, a reclf encoder at its initial parameters (`train --steps 1 --lr 0`, "
             "checked: lr 0 and SRM's Wo still exactly 0).")
    L.append("- Reported as measured; nothing was tuned on the test split.\n")
    L.append("## Runs\n")
    L.append("| variant | hard negatives | seeds (state of eval.json) |")
    L.append("|---|---|---|")
    for v, h in series:
        L.append("| %s | %s | %s |" % (v, "—" if v == "random" else h,
                                      ", ".join("s%s: %s" % (s, st) for s, st in runs_info[(v, h)])))
    L.append("")
    # ---- one compact table of the headline metrics (the README shows this one)
    def short(ms):
        mu, sd, _ = ms
        if mu is None:
            return "—"
        return ("%.3f" % mu).lstrip("0") + ("" if sd is None else " ±" + ("%.3f" % sd).lstrip("0"))
    L.append("## Summary\n")
    L.append("Mean ± sample std over the seeds. Retrieval and binding from the combined score ½(G + Lm) "
             "(G alone for convirt).\n")
    L.append("| variant | hard neg. | zero-shot AUROC | 5×200 acc | probe 1% | probe 100% | i2t R@10 "
             "| binding mirror | binding flip | Dice 1% | Dice 100% |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for v, h in present:
        t = table[(v, h)]
        keys = ["zs.macro_auroc", "zs.acc_5x200", "probe.auroc_1%", "probe.auroc_100%", "ret.combined.i2t.R@10",
                "bind.combined.mirror", "bind.combined.flip", "seg.dice_1%", "seg.dice_100%"]
        L.append("| %s | %s | " % (v, "—" if v == "random" else h) +
                 " | ".join(short(t.get(k, (None, None, 0))) for k in keys) + " |")
    L.append("")
    for title, cols in TABLES:
        L.append("## %s\n" % title)
        L.append("| variant | hard neg. | " + " | ".join(c for c, _ in cols) + " |")
        L.append("|---|---|" + "---|" * len(cols))
        for v, h in present:
            L.append("| %s | %s | " % (v, "—" if v == "random" else h) +
                     " | ".join(fmt(table[(v, h)].get(k, (None, None, 0)), len(seeds)) for _, k in cols) + " |")
        L.append("")

    # ---- the claim, metric by metric
    L.append("## SPEC §10 claim, metric by metric\n")
    L.append("Difference of means, reclf minus the rival, same hard-negative mode; **bold** when reclf is "
             "higher. With more than one seed, † marks a difference larger than the two standard "
             "deviations added (a rough bar, not a test). `?` when a side is missing.\n")
    claim_rows = {}
    for h in hns:
        if ("reclf", h) not in present:
            L.append("No finished `reclf %s` run: no comparison for this mode.\n" % h)
            continue
        rivals = [r for r in RIVALS if (r, h) in present]
        L.append("### hard negatives: %s\n" % h)
        L.append("| metric | reclf | " + " | ".join("− " + r for r in rivals) + " |")
        L.append("|---|---|" + "---|" * len(rivals))
        wins = {r: [0, 0, 0] for r in rivals}  # higher, compared, lower
        for k in CLAIM_KEYS:
            a = table[("reclf", h)].get(k, (None, None, 0))
            cells = []
            for r in rivals:
                b = table[(r, h)].get(k, (None, None, 0))
                if a[0] is None or b[0] is None:
                    cells.append("?")
                    continue
                dlt = a[0] - b[0]
                sig = a[1] is not None and b[1] is not None and abs(dlt) > a[1] + b[1]
                c = "%+.3f" % dlt
                cells.append(("**%s**" % c if dlt > 0 else c) + (" †" if sig else ""))
                wins[r][1] += 1
                if dlt > 0:
                    wins[r][0] += 1
                elif dlt < 0:
                    wins[r][2] += 1
            L.append("| %s | %s | %s |" % (k, fmt(a, len(seeds)), " | ".join(cells)))
        L.append("| **reclf higher / lower / compared** | | " +
                 " | ".join("%d / %d / %d" % (wins[r][0], wins[r][2], wins[r][1]) for r in rivals) + " |")
        L.append("")
        claim_rows[h] = {r: {"reclf_higher": wins[r][0], "reclf_lower": wins[r][2], "compared": wins[r][1]} for r in rivals}

    # ---- loss curves and bar charts
    plots = make_plots(runs, out, variants, hns, seeds, present, table, steps, batch)
    L.append("## Plots\n")
    L.append("Loss curves are the training loss of each variant's own objective (reclf family and gloria: "
             "CE2(G) + CE2(Lm); convirt: CE2(G) alone; side-swap: over B + M texts), so they show how each "
             "run converged, not which variant is better. Bars: one colour per variant, side-swap hatched, "
             "the random floor grey; error bars are the sample std over seeds (none with one seed).\n")
    for p in plots:
        L.append("![%s](plots/%s)\n" % (p, p))
    with open(os.path.join(out, "RESULTS.md"), "w") as f:
        f.write("\n".join(L))

    js = {
        "command": command, "steps": int(steps), "batch": int(batch), "seeds": seeds,
        "eval_args": eval_args, "variants": variants, "hard_negatives": hns,
        "runs": {"%s|%s" % k: [{"seed": s, "state": st} for s, st in v] for k, v in runs_info.items()},
        "summary": {"%s|%s" % k: {m: {"mean": ms[0], "std": ms[1], "n": ms[2]} for m, ms in sorted(v.items())}
                    for k, v in table.items() if k in present},
        "per_seed": per_seed,
        "claim": claim_rows,
    }
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(js, f, indent=1, sort_keys=True)
    print("wrote %s, %s and %d plots" % (os.path.join(out, "RESULTS.md"), os.path.join(out, "results.json"), len(plots)))


# colour-blind-safe and dark enough on white (gnuplot's default 5th colour is a pale yellow)
COLOURS = ["#9400d3", "#009e73", "#0072b2", "#e69f00", "#d55e00", "#56b4e9", "#cc79a7", "#000000"]


def colour(v, variants):
    return "lc rgb '%s'" % COLOURS[variants.index(v) % len(COLOURS)]


def bar_style(v, h, variants):
    """one colour per variant (the floor grey); side-swap bars hatched in the variant's colour"""
    if v == "random":
        return "lc rgb '#888888' fs solid 0.6"
    c = colour(v, variants)
    return c + (" fs pattern 4 border" if h == "side-swap" else " fs solid 0.85 border -1")


def gp_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_gnuplot(script_path):
    if not shutil.which("gnuplot"):
        print("gnuplot not found: wrote %s, no PNG" % script_path)
        return False
    r = subprocess.run(["gnuplot", script_path], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write("gnuplot %s failed:\n%s" % (script_path, r.stderr))
        return False
    return True


def make_plots(runs, out, variants, hns, seeds, present, table, steps, batch):
    pdir = os.path.join(out, "plots")
    made = []
    # loss curves: mean over seeds at each logged step (only steps that every finished seed logged)
    for h in hns:
        curves = []
        for v in variants:
            if (v, h) not in present:
                continue
            ls = [load_losses(os.path.join(runs, "%s-%s-s%s" % (v, h, s), "metrics.jsonl")) for s in seeds]
            ls = [l for l in ls if l]
            if not ls:
                continue
            common = sorted(set.intersection(*(set(l) for l in ls)))
            dat = os.path.join(pdir, "loss-%s-%s.dat" % (h, v))
            with open(dat, "w") as f:
                f.write("# step mean_loss (over %d seeds)\n" % len(ls))
                for st in common:
                    f.write("%d %.6f\n" % (st, sum(l[st] for l in ls) / len(ls)))
            curves.append((v, dat, len(ls)))
        if not curves:
            continue
        png = "loss-%s.png" % h
        gp = os.path.join(pdir, "loss-%s.gp" % h)
        with open(gp, "w") as f:
            f.write("set terminal pngcairo noenhanced size 900,560 font 'sans,10'\n")
            f.write("set output %s\n" % gp_quote(os.path.join(pdir, png)))
            f.write("set title %s\n" % gp_quote("Training loss, hard negatives: %s (%s steps, batch %s; mean over seeds)" % (h, steps, batch)))
            f.write("set xlabel 'step'\nset ylabel 'training loss (per variant: SPEC 6, 8a)'\nset grid\nset key top right\n")
            f.write("plot " + ", \\\n     ".join("%s using 1:2 with lines lw 2 %s title %s" % (gp_quote(d), colour(v, variants), gp_quote("%s (%d seed%s)" % (v, n, "s" if n > 1 else "")))
                                               for v, d, n in curves) + "\n")
        if run_gnuplot(gp):
            made.append(png)
    # bar charts, one per task: groups = metrics, bars = variant x hard-negative mode (and the floor)
    for stem, title, cols, yr in CHARTS:
        ser = [(v, h) for v, h in present if any(table[(v, h)].get(k, (None,))[0] is not None for _, k in cols)]
        if not ser:
            continue
        dat = os.path.join(pdir, "bars-%s.dat" % stem)
        with open(dat, "w") as f:
            f.write("# metric " + " ".join("{0}_mean {0}_std".format(series_name(v, h).replace(" ", "_")) for v, h in ser) + "\n")
            for lab, k in cols:
                row = [gp_quote(lab)]
                for v, h in ser:
                    mu, sd, _ = table[(v, h)].get(k, (None, None, 0))
                    row.append("NaN" if mu is None else "%.6f" % mu)
                    row.append("0" if sd is None else "%.6f" % sd)
                f.write(" ".join(row) + "\n")
        png = "bars-%s.png" % stem
        gp = os.path.join(pdir, "bars-%s.gp" % stem)
        with open(gp, "w") as f:
            f.write("set terminal pngcairo noenhanced size %d,560 font 'sans,10'\n" % max(900, 120 * len(cols) * max(1, len(ser)) // 4 + 300))
            f.write("set output %s\n" % gp_quote(os.path.join(pdir, png)))
            f.write("set title %s\n" % gp_quote("%s (%s steps, batch %s; mean ± std over seeds)" % (title, steps, batch)))
            f.write("set style data histogram\nset style histogram errorbars gap 2 lw 1\n")
            f.write("set style fill solid 0.85 border -1\nset boxwidth 0.9\nset grid ytics\n")
            f.write("set yrange %s\nset key outside right top vertical\nset xtics nomirror\n" % yr)
            f.write("plot " + ", \\\n     ".join("%s using %d:%d:xtic(1) %s title %s" % (gp_quote(dat), 2 + 2 * i, 3 + 2 * i, bar_style(v, h, variants), gp_quote(series_name(v, h)))
                                               for i, (v, h) in enumerate(ser)) + "\n")
        if run_gnuplot(gp):
            made.append(png)
    return made


def main(argv):
    if len(argv) >= 3 and argv[1] == "ckpt-step":
        ckpt_step(argv[2])
    elif len(argv) >= 3 and argv[1] == "check-floor":
        check_floor(argv[2])
    elif len(argv) == 11 and argv[1] == "aggregate":
        _, _, runs, out, variants, hns, seeds, steps, batch, eval_args, command = argv
        aggregate(runs, out, variants.split(), hns.split(), seeds.split(), steps, batch, eval_args, command)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
