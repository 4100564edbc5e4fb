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
from gluonfr.engine import TrainConfig, train  # noqa: E402
from gluonfr.engine.demo import DEMO_TRAIN, ensure_demo_data  # noqa: E402

import _util  # noqa: E402

#: what changes per loss (margins: the papers' defaults; scale / alpha: the demo's)
LOSSES = {
    "arcface": dict(loss="arcface", margin_m=0.5),
    "cosface": dict(loss="cosface", margin_m=0.35),
    "l2softmax": dict(loss="l2softmax", loss_warmup_iters=0),
    "softmax": dict(loss="softmax", loss_warmup_iters=0),
}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--loss", choices=sorted(LOSSES), default="arcface")
    p.add_argument("--root", required=True, help="the procedural face set (made if missing)")
    p.add_argument("--iters", type=int, default=None, help="default: the demo's")
    p.add_argument("--batch", type=int, default=None, help="default: the demo's")
    p.add_argument("--prepare-only", action="store_true")
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
    iters = settings["max_iters"]
    settings["loss_warmup_iters"] = min(settings.get("loss_warmup_iters", 0), iters // 2)
    settings["warmup_iters"] = min(settings.get("warmup_iters", 0), iters // 2)
    settings.update(log_interval=max(1, iters // 5), progress=False)
    with tempfile.TemporaryDirectory() as save_dir:
        cfg = TrainConfig(data_dir=args.root, save_dir=save_dir, tensorboard="",
                          val_targets=["synth_val"], val_interval=iters, save_interval=iters,
                          **settings)
        t0 = time.perf_counter()
        summary = train(cfg)
        seconds = time.perf_counter() - t0
    val = (summary.get("last_val") or {}).get("accuracy", {})
    stats = summary.get("last_stats") or {}
    _util.emit({"loss": args.loss, "accuracy": val.get("synth_val"), "seconds": seconds,
                "iters": iters, "batch": settings["batch_size"], "data": info,
                "settings": cfg.to_dict(), "samples_per_s": summary.get("samples_per_sec"),
                "train_accuracy": stats.get("accuracy"), "train_loss": stats.get("loss")})


if __name__ == "__main__":
    main()
