"""Worker: train with one loss for a fixed budget, then verify on held-out identities.

The demo's data and training settings (``gluonfr.engine.demo``: procedural faces,
MobileFaceNet, the same schedule), with the loss swapped and ``--iters`` iterations, run by
``gluonfr.engine.train`` (what ``scripts/train.py`` runs); the flip accuracy is measured on the
dataset's ``synth_val.bin``, pairs of identities never seen in training.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gluonfr  # noqa: E402,F401  (numpy aliases before mxnet)
from gluonfr.engine import Callback, TrainConfig, train  # noqa: E402
from gluonfr.engine.demo import DEMO_TRAIN, ensure_demo_data  # noqa: E402

import _util  # noqa: E402

#: what changes per loss. Every scaled head uses the demo's s = 32 (alpha for L2-softmax);
#: margins and other settings are each head's defaults (the papers'; ``margin_m=None``: the
#: head's own m, not the demo's ArcFace 0.5), see docs/heads.rst.
LOSSES = {
    "arcface": dict(loss="arcface", margin_m=0.5),
    "cosface": dict(loss="cosface", margin_m=0.35),
    "combined": dict(loss="combined", margin_m=None, margin_m1=1.0, margin_m2=0.3, margin_m3=0.2),
    "normface": dict(loss="normface", margin_m=None),
    "sphereface": dict(loss="sphereface", margin_m=None),
    "mv_softmax": dict(loss="mv_softmax", margin_m=None),
    "curricularface": dict(loss="curricularface", margin_m=None),
    "adacos": dict(loss="adacos", margin_m=None),
    "adaface": dict(loss="adaface", margin_m=None),
    "magface": dict(loss="magface", margin_m=None),
    "circle": dict(loss="circle", margin_m=None),
    "subcenter_arcface": dict(loss="subcenter_arcface", margin_m=0.5),
    "l2softmax": dict(loss="l2softmax", margin_m=None, loss_warmup_iters=0),
    "lgm": dict(loss="lgm", margin_m=None, loss_warmup_iters=0),
    "softmax": dict(loss="softmax", margin_m=None, loss_warmup_iters=0),
}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--loss", choices=sorted(LOSSES), default="arcface")
    p.add_argument("--root", required=True, help="the procedural face set (made if missing)")
    p.add_argument("--iters", type=int, default=None, help="default: the demo's")
    p.add_argument("--batch", type=int, default=None, help="default: the demo's")
    p.add_argument("--seed", type=int, default=None, help="default: the demo's (0)")
    p.add_argument("--input-size", type=int, default=None, help="default: the demo's (64)")
    p.add_argument("--no-loss-warmup", action="store_true",
                   help="train with the head alone from the start (the per-head comparison)")
    p.add_argument("--sample-rate", type=float, default=None,
                   help="train the class centres as a PartialFC at this rate (default: the "
                        "replicated head)")
    p.add_argument("--prepare-only", action="store_true")
    p.add_argument("--untrained", action="store_true",
                   help="verify the network as initialised for --seed, without training (the "
                        "per-head table's reference row)")
    args = p.parse_args()
    info, _ = ensure_demo_data(args.root)
    if args.prepare_only:
        _util.emit({"prepared": args.root, "data": info})
        return
    settings = dict(DEMO_TRAIN, **LOSSES[args.loss])
    if args.iters:
        settings["max_iters"] = args.iters
    if args.batch:
        settings["batch_size"] = args.batch
    if args.seed is not None:
        settings["seed"] = args.seed
    if args.input_size:
        settings["input_size"] = args.input_size
    if args.no_loss_warmup:
        settings["loss_warmup_iters"] = 0
    if args.sample_rate is not None:
        settings.update(partial_fc=True, sample_rate=args.sample_rate)
    iters = settings["max_iters"]
    settings["loss_warmup_iters"] = min(settings.get("loss_warmup_iters", 0), iters // 2)
    settings["warmup_iters"] = min(settings.get("warmup_iters", 0), iters // 2)
    settings.update(log_interval=max(1, iters // 5), progress=False)
    if args.untrained:
        return _untrained(args.root, settings, info)
    with tempfile.TemporaryDirectory() as save_dir:
        cfg = TrainConfig(data_dir=args.root, save_dir=save_dir, tensorboard="",
                          val_targets=["synth_val"], val_interval=iters, save_interval=iters,
                          **settings)
        sampled = _SampledClasses()
        t0 = time.perf_counter()
        summary = train(cfg, callbacks=[sampled])
        seconds = time.perf_counter() - t0
    val = (summary.get("last_val") or {}).get("accuracy", {})
    stats = summary.get("last_stats") or {}
    _util.emit({"loss": args.loss, "seed": settings.get("seed", 0),
                "accuracy": val.get("synth_val"), "seconds": seconds,
                "fold_std": ((summary.get("last_val") or {}).get("accuracy_std") or {})
                .get("synth_val"),
                "iters": iters, "batch": settings["batch_size"], "data": info,
                "settings": cfg.to_dict(), "samples_per_s": summary.get("samples_per_sec"),
                "train_accuracy": stats.get("accuracy"), "train_loss": stats.get("loss"),
                "num_classes": sampled.classes, "sampled_classes_mean": sampled.mean()})


class _SampledClasses(Callback):
    """Classes per step of a Partial FC head (its sampled set), averaged over the run."""

    def __init__(self):
        self.counts, self.classes = [], None

    def on_iteration_end(self, loop):
        self.classes = loop.num_classes
        stats = loop.head_stats()
        if stats is not None:
            self.counts.append(stats["sampled_classes"])

    def mean(self):
        return sum(self.counts) / len(self.counts) if self.counts else None


def _untrained(root, settings, info):
    """Flip accuracy of the initialised network (the seed's initialisation, no step taken)."""
    from gluonfr.engine import TrainLoop
    from gluonfr.metrics import evaluate_targets, load_targets

    with tempfile.TemporaryDirectory() as save_dir:
        cfg = TrainConfig(data_dir=root, save_dir=save_dir, tensorboard="", val_targets=[],
                          **dict(settings, progress=False))
        t0 = time.perf_counter()
        loop = TrainLoop(cfg)
        targets, _ = load_targets(root, ["synth_val"], image_size=(cfg.input_size,) * 2)
        res = evaluate_targets(loop.backbone, targets, ctx=loop.ctx, batch_size=64,
                               progress=False)["synth_val"]
        seconds = time.perf_counter() - t0
    _util.emit({"loss": "untrained", "seed": cfg.seed, "accuracy": float(res["accuracy"]),
                "seconds": seconds, "iters": 0, "batch": cfg.batch_size, "data": info,
                "settings": cfg.to_dict(), "samples_per_s": None, "train_accuracy": None,
                "train_loss": None})


if __name__ == "__main__":
    main()
