"""Baseline worker: samples/s and peak memory of gluon-face 1.0.2's training step.

As its ``scripts/train_script.py`` trains MobileFaceNet: ``get_model(name, classes=C,
weight_norm=True, feature_norm=True)`` (NormDense output), MSRAPrelu init, plain
``hybridize()``, ``ArcLoss(C, m=0.5, s=64, easy_margin=False)`` (not hybridized), NAG with
momentum 0.9 and ``wd_mult=10`` on the output layer, ``autograd.backward`` then
``trainer.step(batch)``; on a fixed random batch (ToTensor range 0..1).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "workers"))
from gluonfr.loss import ArcLoss  # noqa: E402  (gluon-face 1.0.2)
from gluonfr.model_zoo import get_model  # noqa: E402

import _util  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402


def main():
    p = _util.add_step_args(argparse.ArgumentParser(description=__doc__), 64, iters=4)
    p.add_argument("--model", default="mobilefacenet")
    args = p.parse_args()
    mx.random.seed(0)
    net = get_model(args.model, classes=args.classes, weight_norm=True, feature_norm=True)
    net.initialize(mx.init.MSRAPrelu())
    if args.model == "mobilefacenet":
        net.collect_params(".*output_").setattr("wd_mult", 10)
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), "nag",
                            {"learning_rate": 0.1, "wd": 5e-4, "momentum": 0.9})
    loss_fn = ArcLoss(args.classes, m=0.5, s=64, easy_margin=False)
    rng = np.random.default_rng(0)
    data = mx.nd.array(rng.uniform(0, 1, (args.batch, 3, 112, 112)))
    label = mx.nd.array(rng.integers(0, args.classes, args.batch))
    ctx = [mx.cpu()]

    def step():
        xs = gluon.utils.split_and_load(data, ctx_list=ctx, even_split=False)
        ys = gluon.utils.split_and_load(label, ctx_list=ctx, even_split=False)
        with autograd.record():
            outputs = [net(x)[1] for x in xs]
            losses = [loss_fn(yhat, y) for yhat, y in zip(outputs, ys)]
        autograd.backward(losses)
        trainer.step(args.batch)
        mx.nd.waitall()

    times = _util.timed(step, args.warmup, seconds=0, min_iters=args.iters,
                        max_iters=args.iters)
    t = _util.summarise(times)
    _util.emit({"samples_per_s": args.batch / t["median_s"], "timing": t,
                "classes": args.classes, "batch": args.batch})


if __name__ == "__main__":
    main()
