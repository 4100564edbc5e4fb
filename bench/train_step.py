"""Training step: MobileFaceNet + NormDense + ArcFace, samples/s and peak memory.

Ours is ``gluonfr.engine.TrainLoop.step`` (what ``train`` runs every iteration); gluon-face
1.0.2 is its training script's step (NormDense output inside the hybridized net, ArcLoss,
NAG); both on fixed random batches, so data loading is excluded (bench/data.py). Targets
(issue 8): >= 1.2x samples/s and <= 0.5x peak memory, for the step as the library runs it by
default: on the CPU each batch as micro-batches of 16 (``gluonfr.engine.CPU_MICRO_BATCH``:
accumulated gradients, one optimiser step per batch, BatchNorm statistics per micro-batch).
Rows marked "whole batches" run ``--micro-batch 0``; rows marked "before" also train with
MXNet's own per-channel PReLU op (``gluonfr.nn.native_prelu``): the library before
``gluonfr.nn.PReLU``, in the same run.
"""
from bench.common import Figure, median, median_ratio, print_table, rounds

CONFIGS = ((10000, 64), (10000, 128), (85742, 64), (85742, 128))
BEFORE_CONFIGS = ((10000, 64), (85742, 128))
SPEED_TARGET = 1.2
MEMORY_TARGET = 0.5


def run(quick=False):
    configs = ((10000, 16),) if quick else CONFIGS
    repeats = 1 if quick else 2
    iters = ["--warmup", "1", "--iters", "1" if quick else "2"]
    figures = []
    for classes, batch in configs:
        args = ["--classes", classes, "--batch", batch] + iters
        whole = args + ["--micro-batch", 0]
        variants = {"baseline": ("baseline", "train_step", args),
                    "ours": ("ours", "train_step", args),
                    "whole": ("ours", "train_step", whole)}
        if quick or (classes, batch) in BEFORE_CONFIGS:
            variants["before"] = ("ours", "train_step", whole + ["--native-prelu"])
        runs = rounds(variants, repeats, progress=f"train_step {classes}/{batch}")
        base = [r["samples_per_s"] for r in runs["baseline"]]
        base_mem = [r["peak_rss_mib"] for r in runs["baseline"]]
        for key in [k for k in variants if k != "baseline"]:
            label = {"ours": "", "whole": ", whole batches",
                     "before": ", whole batches, LeakyReLU('prelu') op (before)"}[key]
            targeted = key == "ours"
            ours = [r["samples_per_s"] for r in runs[key]]
            ratio = median_ratio(ours, base)
            figures.append(Figure(
                "train_step", f"samples/s {classes:,} classes b{batch}{label}", median(ours),
                median(base), unit="samples/s", ratio=ratio,
                target=f">= {SPEED_TARGET}x gluon-face" if targeted else "",
                met=(ratio is not None and ratio >= SPEED_TARGET) if targeted else None,
                ours_runs=ours,
                baseline_runs=base))
            mem = [r["peak_rss_mib"] for r in runs[key]]
            mem_ratio = median_ratio(mem, base_mem, higher_is_better=False)
            figures.append(Figure(
                "train_step", f"peak RSS {classes:,} classes b{batch}{label}", median(mem),
                median(base_mem), unit="MiB", ratio=mem_ratio,
                target=f"<= {MEMORY_TARGET}x gluon-face" if targeted else "",
                met=(mem_ratio is not None and 1 / mem_ratio <= MEMORY_TARGET)
                if targeted else None,
                note="ratio = baseline / ours", ours_runs=mem, baseline_runs=base_mem))
    print_table("training step (ratio > 1 = ours better)", figures)
    return figures
