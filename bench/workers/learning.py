"""Worker: train with one loss for a fixed budget, then verify on held-out identities.

Runs ``gluonfr.engine.train`` (the function ``scripts/train.py`` runs) on the procedural face
dataset, ``--iters`` iterations of ``--batch`` images, and reports the flip accuracy on the
dataset's ``synth_val.bin`` (pairs of identities never seen in training).
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gluonfr  # noqa: E402,F401  (numpy aliases before mxnet)
from gluonfr.engine import TrainConfig, train  # noqa: E402

import _util  # noqa: E402

#: per-loss settings: scale 32 suits a few hundred classes (insightface's 64 is for 85k);
#: margins are the papers' defaults
LOSSES = {
    "arcface": dict(loss="arcface", margin_s=32.0, margin_m=0.5),
    "cosface": dict(loss="cosface", margin_s=32.0, margin_m=0.35),
    "l2softmax": dict(loss="l2softmax", margin_s=32.0),
    "softmax": dict(loss="softmax"),
}


def prepare(root, ids, per_id, pairs):
    import json

    from gluonfr.data.synthetic import make_dataset

    stamp = os.path.join(root, "ready.json")
    want = {"ids": ids, "per_id": per_id, "pairs": pairs, "version": 1}
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == want:
                return
    make_dataset(root, ids, per_id, num_pairs=pairs, seed=0, num_workers=os.cpu_count() or 1)
    with open(stamp, "w") as f:
        json.dump(want, f)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--loss", choices=sorted(LOSSES), default="arcface")
    p.add_argument("--root", required=True)
    p.add_argument("--ids", type=int, default=200)
    p.add_argument("--per-id", type=int, default=16)
    p.add_argument("--pairs", type=int, default=600)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--model", default="mobilefacenet")
    p.add_argument("--prepare-only", action="store_true")
    args = p.parse_args()
    prepare(args.root, args.ids, args.per_id, args.pairs)
    if args.prepare_only:
        _util.emit({"prepared": args.root})
        return
    with tempfile.TemporaryDirectory() as save_dir:
        cfg = TrainConfig(model=args.model, data_dir=args.root, batch_size=args.batch,
                          max_iters=args.iters, lr=args.lr, lr_mode="cosine",
                          warmup_iters=max(1, args.iters // 10), wd=5e-4, momentum=0.9,
                          val_targets=["synth_val"], val_interval=args.iters,
                          save_interval=args.iters, save_dir=save_dir, tensorboard="",
                          progress=False, log_interval=max(1, args.iters // 5), seed=0,
                          **LOSSES[args.loss])
        t0 = time.perf_counter()
        summary = train(cfg)
        seconds = time.perf_counter() - t0
    val = (summary.get("last_val") or {}).get("accuracy", {})
    stats = summary.get("last_stats") or {}
    _util.emit({"loss": args.loss, "accuracy": val.get("synth_val"), "seconds": seconds,
                "iters": args.iters, "batch": args.batch,
                "samples_per_s": summary.get("samples_per_sec"),
                "train_accuracy": stats.get("accuracy"), "train_loss": stats.get("loss")})


if __name__ == "__main__":
    main()
