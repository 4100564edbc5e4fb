"""What each loss learns in a fixed CPU budget: held-out verification accuracy.

Ours only (no baseline column): ``gluonfr.engine.train`` with ArcFace, CosFace, L2-softmax and
plain softmax, the same MobileFaceNet, data, schedule and number of iterations, on the
procedural face dataset (200 identities x 16 images); the accuracy (flip, 10 folds) is on
``synth_val.bin``, pairs of identities the network never saw. The budget is
``GLUONFR_BENCH_LEARNING_ITERS`` iterations of batch 64 (``--quick``: a few iterations of 16).
"""
import os

from bench.common import WORK_DIR, Figure, print_table, run_worker

ROOT = os.path.join(WORK_DIR, "learning")
LOSSES = ("arcface", "cosface", "l2softmax", "softmax")


def run(quick=False):
    iters = 2 if quick else int(os.environ.get("GLUONFR_BENCH_LEARNING_ITERS", "100"))
    batch = 16 if quick else 64
    if quick:
        data = ["--root", ROOT + "-quick", "--ids", 20, "--per-id", 8, "--pairs", 40]
    else:
        data = ["--root", ROOT, "--ids", 200, "--per-id", 16, "--pairs", 400]
    run_worker("ours", "learning", *data, "--prepare-only")
    figures = []
    for loss in LOSSES:
        r = run_worker("ours", "learning", *data, "--loss", loss, "--iters", iters,
                       "--batch", batch)
        figures.append(Figure(
            "learning", f"held-out accuracy after {iters} x {batch}: {loss}", r["accuracy"],
            None, note=f"{r['seconds']:.0f} s incl. verification; train accuracy "
                       f"{r['train_accuracy'] or 0:.3f}, loss {r['train_loss'] or 0:.3f}",
            seconds=r["seconds"], samples_per_s=r["samples_per_s"]))
    print_table("learning in a fixed budget (held-out verification accuracy)", figures)
    return figures
