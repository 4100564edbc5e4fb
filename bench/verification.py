"""Verification protocol time: ours vs the loop reference and gluon-face 1.0.2's metric.

Synthetic embeddings with signal (a same pair shares an identity vector, plus noise) in pair
order, 6,000 pairs (LFW / CFP-FP / AgeDB-30 size) and 60,000. Ours is the whole
``gluonfr.metrics.verification`` call (accuracy, VAL@FAR, ROC, AUC, EER, TAR@FAR); the loop
reference is the one the tests check ours against (folds x thresholds in Python); gluon-face's
``FaceVerification.get()`` crashes on current scipy, so its accuracy part is timed alone.
Target (issue 7): >= 20x the loop reference with identical numbers. The embedding extraction
that precedes the metric is timed too (MobileFaceNet, batch 64, flip), per 12,000 images.
"""
import os

from bench.common import WORK_DIR, Figure, median, median_ratio, print_table, rounds, run_worker

import numpy as np

TARGET = 20.0
EXTRACT_IMAGES = 12000


def _embeddings(num_pairs, dim, noise=3.0, seed=0):
    """npz of (2P, D) float32 embeddings and issame; noise 3 gives ~0.87 accuracy at 512-d."""
    path = os.path.join(WORK_DIR, f"verification-{num_pairs}x{dim}.npz")
    if not os.path.exists(path):
        rng = np.random.default_rng(seed)
        issame = rng.random(num_pairs) < 0.5
        ident = rng.normal(size=(num_pairs, dim))
        a = ident + noise * rng.normal(size=(num_pairs, dim))
        b = np.where(issame[:, None], ident, rng.normal(size=(num_pairs, dim)))
        b = b + noise * rng.normal(size=(num_pairs, dim))
        emb = np.empty((2 * num_pairs, dim), np.float32)
        emb[0::2], emb[1::2] = a, b
        os.makedirs(WORK_DIR, exist_ok=True)
        from gluonfr.utils.fileio import atomic_paths

        with atomic_paths(path) as (tmp,):
            np.savez(tmp, embeddings=emb, issame=issame)
    return path


def run(quick=False):
    sets = ((6000, 128),) if quick else ((6000, 512), (6000, 128), (60000, 512))
    repeats = 1 if quick else 2
    figures = []
    metric_s = {}
    for pairs, dim in sets:
        path = _embeddings(pairs, dim)
        runs = rounds({"ours": ("ours", "verification", ["--embeddings", path]),
                       "baseline": ("baseline", "verification", ["--embeddings", path])},
                      repeats, progress=f"verification {pairs}x{dim}")
        ours = [r["ours_s"] for r in runs["ours"]]
        loop_full = [r["loop_full_s"] for r in runs["ours"]]
        loop_acc = [r["loop_accuracy_s"] for r in runs["ours"]]
        base = [r["accuracy_part_s"] for r in runs["baseline"]]
        first, b0 = runs["ours"][0], runs["baseline"][0]
        identical = all(all(r["identical"].values()) for r in runs["ours"])
        tag = f"{pairs:,} pairs {dim}-d"
        metric_s[(pairs, dim)] = median(ours)
        for name, ref, what in (("loop reference (accuracy + VAL)", loop_full, "full"),
                                ("loop accuracy part alone", loop_acc, "accuracy")):
            r = median_ratio(ours, ref, higher_is_better=False)
            figures.append(Figure(
                "verification", f"{tag}: ours (whole call) vs {name}", median(ours),
                median(ref), unit="s", ratio=r,
                target=f">= {TARGET:.0f}x, identical" if pairs == 6000 else "",
                met=(r is not None and r >= TARGET and identical) if pairs == 6000 else None,
                note=f"baseline column: the loop ({what}); numbers identical: {identical}",
                ours_runs=ours, loop_runs=ref, identical=first["identical"]))
        r = median_ratio(ours, base, higher_is_better=False)
        crash = b0["get_error"]
        figures.append(Figure(
            "verification", f"{tag}: ours (whole call) vs gluon-face accuracy part",
            median(ours), median(base), unit="s", ratio=r,
            note=("gluon-face FaceVerification.get() fails: " + crash) if crash else "",
            baseline_runs=base))
        figures.append(Figure(
            "verification", f"{tag}: accuracy", first["accuracy"], b0["accuracy"],
            note="gluon-face: plain L2 on a 0..2 grid (insightface: squared L2, 0..4); "
                 f"ours VAL@1e-3 {first['val']:.4f}, AUC {first['auc']:.4f}, "
                 f"EER {first['eer']:.4f}"))

    ext = run_worker("ours", "verification", "--mode", "extract", "--images",
                     64 if quick else 640, "--batch", 64)
    est = ext["seconds_per_image"] * EXTRACT_IMAGES
    figures.append(Figure(
        "verification", f"embedding {EXTRACT_IMAGES:,} images (MobileFaceNet b64, flip)", est,
        None, unit="s",
        note=f"extrapolated from {ext['images']} images; the metric on 6,000 pairs takes "
             f"{metric_s[(6000, 128)]:.3f} s, {100 * metric_s[(6000, 128)] / est:.2f}% of "
             "the extraction"))
    print_table("verification protocol (seconds, lower is better; ratio > 1 = ours faster)",
                figures)
    return figures
