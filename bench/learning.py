"""What each loss learns in a fixed CPU budget: held-out verification accuracy.

Ours only (no baseline column): ``gluonfr.engine.train`` with the demo's data and settings
(``gluonfr.engine.demo``: procedural faces, MobileFaceNet, cosine schedule) and the loss
swapped: ArcFace, CosFace, L2-softmax, plain softmax, the same number of iterations each. The
accuracy (flip, 10 folds) is on ``synth_val.bin``, pairs of identities the network never saw.
``GLUONFR_BENCH_LEARNING_ITERS`` sets the budget (default: the demo's); ``--quick`` trains
a few iterations.
"""
import os

from bench.common import WORK_DIR, Figure, print_table, run_worker

ROOT = os.path.join(WORK_DIR, "learning")
LOSSES = ("arcface", "cosface", "l2softmax", "softmax")


def run(quick=False):
    budget = ["--iters", 4, "--batch", 16] if quick else []
    if not quick and os.environ.get("GLUONFR_BENCH_LEARNING_ITERS"):
        budget = ["--iters", int(os.environ["GLUONFR_BENCH_LEARNING_ITERS"])]
    run_worker("ours", "learning", "--root", ROOT, "--prepare-only")
    figures = []
    for loss in LOSSES:
        r = run_worker("ours", "learning", "--root", ROOT, "--loss", loss, *budget)
        figures.append(Figure(
            "learning", f"held-out accuracy, {r['iters']} iterations of {r['batch']}: {loss}",
            r["accuracy"], None,
            note=f"{r['seconds']:.0f} s incl. verification; final train accuracy "
                 f"{r['train_accuracy'] or 0:.3f}, loss {r['train_loss'] or 0:.3f}",
            seconds=r["seconds"], samples_per_s=r["samples_per_s"], settings=r["settings"]))
    print_table("learning in a fixed budget (held-out verification accuracy)", figures)
    return figures
