"""Worker: every classification head trained on the same synthetic features, several seeds.

A cheap stand-in for the image benchmark (``learning``), where a run of every head x 3
seeds does not fit a shared 2-core machine: Gaussian identity clusters in 32-d (train
identities and held-out ones), a two-layer MLP backbone to 16-d, each head as the engine
builds it (``gluonfr.engine.head.build_heads``), the same SGD budget, batches and seeds.
Reported per run: the 10-fold verification accuracy on pairs of held-out identities
(``gluonfr.metrics.verification``) and the mean angular gap on them (nearest other
identity centre minus own centre, radians).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gluonfr  # noqa: E402,F401  (numpy aliases before mxnet)
from gluonfr.engine import TrainConfig  # noqa: E402
from gluonfr.engine.head import build_heads  # noqa: E402
from gluonfr.metrics import verification  # noqa: E402

import _util  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

TRAIN_IDS, HELD_OUT_IDS, DIM, EMB = 40, 20, 32, 16


def make_data(seed):
    """Train images (per identity 30) and held-out identities (per identity 10)."""
    rng = np.random.RandomState(1000 + seed)
    centres = rng.randn(TRAIN_IDS + HELD_OUT_IDS, DIM)
    y_tr = np.repeat(np.arange(TRAIN_IDS), 30)
    y_te = np.repeat(np.arange(TRAIN_IDS, TRAIN_IDS + HELD_OUT_IDS), 10)
    noise = 1.1
    x_tr = centres[y_tr] + noise * rng.randn(len(y_tr), DIM)
    x_te = centres[y_te] + noise * rng.randn(len(y_te), DIM)
    return x_tr.astype(np.float32), y_tr, x_te.astype(np.float32), y_te


def pairs(y, count, rng):
    """Half genuine, half impostor index pairs among the held-out identities."""
    out, same = [], []
    by_id = {c: np.flatnonzero(y == c) for c in np.unique(y)}
    ids = list(by_id)
    for k in range(count):
        if k % 2 == 0:
            a, b = rng.choice(by_id[ids[rng.randint(len(ids))]], 2, replace=False)
        else:
            c1, c2 = rng.choice(ids, 2, replace=False)
            a, b = rng.choice(by_id[c1]), rng.choice(by_id[c2])
        out += [a, b]
        same.append(k % 2 == 0)
    return np.array(out), np.array(same)


def angular_gap(emb, y):
    u = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    ids = np.unique(y)
    centres = np.stack([u[y == c].mean(0) for c in ids])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    col = np.searchsorted(ids, y)
    ang = np.arccos(np.clip(u @ centres.T, -1, 1))
    own = ang[np.arange(len(y)), col]
    other = np.where(np.eye(len(ids), dtype=bool)[col], np.inf, ang).min(1)
    return float(np.mean(other - own))


def train_one(loss, seed, steps, batch, lr, s):
    x_tr, y_tr, x_te, y_te = make_data(seed)
    mx.random.seed(seed)
    backbone = gluon.nn.HybridSequential()
    backbone.add(gluon.nn.Dense(64, in_units=DIM, activation="relu"),
                 gluon.nn.Dense(EMB, in_units=64))
    cfg = TrainConfig(loss=loss, max_iters=steps, margin_s=s, margin_m=None)
    head, _ = build_heads(cfg, TRAIN_IDS, EMB)
    backbone.initialize(mx.init.Xavier())
    head.initialize(mx.init.Xavier())
    backbone.hybridize()
    head.hybridize()
    params = backbone.collect_params()
    params.update(head.collect_params())
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": lr, "momentum": 0.9, "wd": 5e-4})
    x, y = mx.nd.array(x_tr), mx.nd.array(y_tr)
    rng = np.random.RandomState(seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = mx.nd.array(rng.choice(len(y_tr), batch, replace=False))
        with autograd.record():
            value, _ = head(backbone(x.take(idx)), y.take(idx))
        value.backward()
        trainer.step(batch)
    final_loss = float(value.mean().asscalar())
    emb = backbone(mx.nd.array(x_te)).asnumpy()
    out = {"loss": loss, "seed": seed, "final_loss": final_loss,
           "seconds": time.perf_counter() - t0, "finite": bool(np.isfinite(emb).all())}
    if not out["finite"]:  # diverged: reported as such, the other runs go on
        out.update(accuracy=None, gap=None)
        return out
    idx, same = pairs(y_te, 600, np.random.RandomState(seed))
    out.update(accuracy=float(verification(emb[idx], same)["accuracy"]),
               gap=angular_gap(emb, y_te))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--losses", required=True, help="comma list of classification heads")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--s", type=float, default=16.0, help="scale of every scaled head")
    args = p.parse_args()
    runs = []
    for loss in args.losses.split(","):
        for seed in args.seeds.split(","):
            runs.append(train_one(loss, int(seed), args.steps, args.batch, args.lr, args.s))
            print(f"{loss} seed {seed}: accuracy {runs[-1]['accuracy']}, gap "
                  f"{runs[-1]['gap']}", file=sys.stderr, flush=True)
    _util.emit({"runs": runs, "steps": args.steps, "batch": args.batch, "lr": args.lr,
                "s": args.s, "data": {"train_ids": TRAIN_IDS, "held_out_ids": HELD_OUT_IDS,
                                      "dim": DIM, "embedding": EMB}})


if __name__ == "__main__":
    main()
