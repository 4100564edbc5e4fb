"""Margin head alone: NormDense + ArcFace forward + backward at 85,742 classes, batch 128.

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
    print_table("margin head (ms and MiB, lower is better; ratio > 1 = ours better)", figures)
    return figures
