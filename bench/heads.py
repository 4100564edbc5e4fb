"""Margin head alone: NormDense + ArcFace forward + backward at 85,742 classes, batch 128.

Then every classification head of the loss registry (``HEADS``) as the engine builds it
(128-d), beside gluon-face's counterpart where it has one (``BASELINE_HEADS``; which class
with which settings: ``bench/baseline/heads.py``), and its time relative to our ArcFace in
the same rounds.

Ours is the head the training engine builds (hybridized, static memory); gluon-face 1.0.2 is
its NormDense output layer (hybridized) + ``ArcLoss(easy_margin=False)`` (not hybridized, as
its script runs it), on the same random embeddings and labels. Peak memory is the worker's
ru_maxrss (the whole process: MXNet, the 85,742 x D centres, their gradients).
"""
from bench.common import Figure, median, median_ratio, print_table, rounds

CLASSES = 85742
BATCH = 128


def run(quick=False):
    repeats = 1 if quick else 2
    seconds = "0.5" if quick else "3"
    figures = []
    for emb in (128,) if quick else (128, 512):
        args = ["--classes", CLASSES, "--emb", emb, "--batch", BATCH, "--seconds", seconds]
        runs = rounds({"baseline": ("baseline", "heads", args),
                       "ours": ("ours", "heads", args),
                       "ours_fast": ("ours", "heads", args + ["--fast-backward"])},
                      repeats, progress=f"heads {emb}-d")
        base_ms = [r["ms"] for r in runs["baseline"]]
        base_mem = [r["peak_rss_mib"] for r in runs["baseline"]]
        for key, label in (("ours", "engine head"), ("ours_fast", "fast_backward=True")):
            ms = [r["ms"] for r in runs[key]]
            mem = [r["peak_rss_mib"] for r in runs[key]]
            figures.append(Figure(
                "heads", f"NormDense+ArcFace fwd+bwd {emb}-d b{BATCH} ({label})", median(ms),
                median(base_ms), unit="ms", ratio=median_ratio(ms, base_ms, False),
                note=f"{CLASSES:,} classes; ratio = baseline / ours", ours_runs=ms,
                baseline_runs=base_ms))
            if key == "ours":
                figures.append(Figure(
                    "heads", f"head peak RSS {emb}-d b{BATCH}", median(mem), median(base_mem),
                    unit="MiB", ratio=median_ratio(mem, base_mem, False),
                    note="whole worker process"))
    figures += run_all_heads(quick)
    print_table("margin head (ms and MiB, lower is better; ratio > 1 = ours better)", figures)
    return figures


#: every classification head timed at 85,742 classes (softmax is a plain dense layer)
HEADS = ("arcface", "cosface", "combined", "normface", "sphereface", "mv_softmax",
         "curricularface", "adacos", "adaface", "magface", "circle", "subcenter_arcface",
         "l2softmax", "lgm", "softmax")
#: the heads gluon-face 1.0.2 has a counterpart of (``COUNTERPARTS`` in bench/baseline/heads.py
#: says which class and settings; its docstring why the others have none)
BASELINE_HEADS = ("arcface", "cosface", "combined", "normface", "sphereface", "mv_softmax",
                  "l2softmax", "softmax")


def run_all_heads(quick=False):
    """fwd+bwd ms of each head (128-d, batch 128) and of gluon-face's counterpart, if any.

    ratio = gluon-face / ours (> 1: ours faster); the note gives each head's time relative to
    our ArcFace in the same rounds.
    """
    heads = HEADS[:3] if quick else HEADS
    args = ["--classes", CLASSES, "--emb", 128, "--batch", BATCH,
            "--seconds", "0.5" if quick else "3"]
    variants = {h: ("ours", "heads", args + ["--loss", h]) for h in heads}
    variants.update({f"gluon-face {h}": ("baseline", "heads", args + ["--loss", h])
                     for h in heads if h in BASELINE_HEADS})
    runs = rounds(variants, 1 if quick else 2, progress="heads per loss")
    arc = [r["ms"] for r in runs["arcface"]]
    figures = []
    for h in heads:
        ms = [r["ms"] for r in runs[h]]
        mem = median([r["peak_rss_mib"] for r in runs[h]])
        base = [r["ms"] for r in runs.get(f"gluon-face {h}", [])]
        figures.append(Figure(
            "heads", f"head {h} fwd+bwd 128-d b{BATCH}", median(ms), median(base) if base
            else None, unit="ms", ratio=median_ratio(ms, base, False) if base else None,
            note=f"{CLASSES:,} classes; ratio = gluon-face / ours"
                 + ("" if base else " (gluon-face has no counterpart)")
                 + f"; {median_ratio(arc, ms, False):.2f}x our arcface's time; peak RSS "
                   f"{mem:.0f} MiB", ours_runs=ms, baseline_runs=base, key=f"head {h}"))
    return figures
