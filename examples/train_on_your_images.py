"""Train a face-embedding network on your own photos and verify it on identities it never saw.

    python examples/train_on_your_images.py faces/ work/ [--landmarks landmarks.txt] \\
        [--held-out 0.2] [--pairs 600] [--iters 2000] [--model mobilefacenet]

``faces/`` holds one sub-folder per person. Images are aligned 112x112 crops, or whole photos
with 5-point landmarks in ``--landmarks`` (see ``gluonfr.data.align.read_landmarks``), aligned
on the way. The script

1. holds out a share of the identities (``--held-out``) and draws verification pairs among
   them (``gluonfr.data.sample_pairs``), written as ``work/data/heldout.bin``;
2. packs the other identities into ``work/data/train.rec`` (insightface's layout);
3. trains with ``gluonfr.engine`` (what ``scripts/train.py`` runs), checkpoints in
   ``work/train``, TensorBoard logs in ``work/train/tensorboard``;
4. evaluates the untrained and the trained network on the held-out pairs (10 folds, flip).

Larger runs: point ``scripts/train.py --data-dir work/data --val-targets heldout`` (or a recipe
such as ``scripts/mobilefacenet-arcface.sh``) at the same folder.
"""
import argparse
import json
import os

import gluonfr  # noqa: F401  (numpy aliases before mxnet)
from gluonfr.data import load_bin, pack_bin, pack_rec, sample_pairs
from gluonfr.data.align import read_landmarks
from gluonfr.data.pack import aligned_rgb, list_identity_folders
from gluonfr.engine import TrainConfig, TrainLoop
from gluonfr.metrics import evaluate_targets
from gluonfr.utils.fileio import atomic_open

import numpy as np


def split_identities(folders, held_out, seed):
    """(training names, held-out identity folders): a seeded random share held out."""
    usable = [(name, files) for name, files in folders if files]
    n_held = max(2, int(round(held_out * len(usable))))
    if len(usable) - n_held < 2:
        raise SystemExit(f"need at least {n_held + 2} identities with images to hold {n_held} "
                         f"out; found {len(usable)}")
    order = np.random.default_rng(seed).permutation(len(usable))
    held = [usable[i] for i in sorted(order[:n_held])]
    train = sorted(usable[i][0] for i in order[n_held:])
    return train, held


def pair_images(pairs, image_folder, landmarks, size):
    """Paths as they are (aligned crops), or RGB crops aligned with the landmark table."""
    if landmarks is None:
        return pairs
    return [(aligned_rgb(a, landmarks, image_folder, size),
             aligned_rgb(b, landmarks, image_folder, size), same) for a, b, same in pairs]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("faces", help="folder with one sub-folder of images per identity")
    p.add_argument("work", help="output folder (data/, train/, results.json)")
    p.add_argument("--landmarks", help="5-point landmarks of whole photos (aligned on the way)")
    p.add_argument("--held-out", type=float, default=0.2,
                   help="share of identities kept for verification (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=600, help="verification pairs (even)")
    p.add_argument("--model", default="mobilefacenet")
    p.add_argument("--loss", default="arcface")
    p.add_argument("--margin-s", type=float, default=32.0,
                   help="scale s (32 suits hundreds of identities; insightface uses 64 for 85k)")
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--input-size", type=int, default=112)
    p.add_argument("--ctx", default="cpu:0", help="devices, e.g. gpu:0,gpu:1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    data_dir = os.path.join(args.work, "data")
    table = read_landmarks(args.landmarks) if args.landmarks else None
    train_names, held = split_identities(list_identity_folders(args.faces), args.held_out,
                                         args.seed)
    packed = pack_rec(args.faces, data_dir, landmarks=table, identities=train_names)
    pairs = sample_pairs(held, args.pairs, seed=args.seed)
    pack_bin(pair_images(pairs, args.faces, table, 112), os.path.join(data_dir, "heldout.bin"))
    print(f"training set: {packed['num_images']} images of {packed['num_classes']} identities; "
          f"held out: {len(held)} identities, {len(pairs)} pairs")

    cfg = TrainConfig(model=args.model, loss=args.loss, margin_s=args.margin_s,
                      input_size=args.input_size, data_dir=data_dir,
                      save_dir=os.path.join(args.work, "train"), ctx=args.ctx,
                      batch_size=args.batch_size, max_iters=args.iters, lr=args.lr,
                      lr_mode="cosine", warmup_iters=min(100, args.iters // 10),
                      loss_warmup_iters=args.iters // 4, save_interval=args.iters,
                      val_interval=0, num_workers=1, seed=args.seed,
                      progress=not args.no_progress,
                      overwrite=True)  # WORK is rebuilt on every run, its training too
    size = (cfg.input_size, cfg.input_size)
    targets = {"heldout": load_bin(os.path.join(data_dir, "heldout.bin"), image_size=size)}
    loop = TrainLoop(cfg)

    def accuracy():
        res = evaluate_targets(loop.backbone, targets, ctx=loop.ctx,
                               progress=not args.no_progress)["heldout"]
        return {"accuracy": float(res["accuracy"]), "std": float(res["accuracy_std"]),
                "threshold": float(res["threshold"])}

    before = accuracy()
    summary = loop.run()
    after = accuracy()
    result = {"untrained": before, "trained": after, "iterations": summary["iterations"],
              "checkpoint": summary["checkpoint"], "train_identities": packed["identities"],
              "heldout_identities": [name for name, _ in held]}
    with atomic_open(os.path.join(args.work, "results.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(f"held-out verification (10 folds, flip): untrained {before['accuracy']:.4f} "
          f"+- {before['std']:.4f}, trained {after['accuracy']:.4f} +- {after['std']:.4f}")
    print(f"backbone: {summary['checkpoint'][:-len('.json')]}.params  "
          f"(gluonfr.FaceEmbedder('{args.model}', params=...))")
    print(f"TensorBoard: tensorboard --logdir {cfg.tensorboard_dir}")


if __name__ == "__main__":
    main()
