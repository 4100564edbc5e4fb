"""Baseline worker: forward + backward time of gluon-face 1.0.2's NormDense + ArcLoss.

As its training script runs them: the NormDense output layer (weight_norm, feature_norm) is
part of the hybridized network, the loss block is not hybridized; ArcLoss with
``easy_margin=False`` (insightface's rule, as the script passes), s=64, m=0.5.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "workers"))
from gluonfr.loss import ArcLoss  # noqa: E402  (gluon-face 1.0.2)
from gluonfr.nn.basic_blocks import NormDense  # noqa: E402

import _util  # noqa: E402
import mxnet as mx  # noqa: E402
from mxnet import autograd  # noqa: E402


def main():
    p = _util.add_step_args(argparse.ArgumentParser(description=__doc__), 128, seconds=3.0)
    p.add_argument("--emb", type=int, default=128)
    args = p.parse_args()
    mx.random.seed(0)
    dense = NormDense(args.classes, weight_norm=True, feature_norm=True, in_units=args.emb,
                      prefix="output_")
    dense.initialize(mx.init.MSRAPrelu())
    dense.hybridize()
    loss_fn = ArcLoss(args.classes, m=0.5, s=64, easy_margin=False)
    emb, label = _util.random_head_inputs(args.classes, args.batch, args.emb)

    def step():
        with autograd.record():
            loss = loss_fn(dense(emb), label)
        loss.backward()
        mx.nd.waitall()

    times = _util.timed(step, args.warmup, args.seconds, min_iters=3)
    stats = _util.summarise(times)
    _util.emit({"ms": 1000 * stats["median_s"], "timing": stats, "classes": args.classes,
                "emb": args.emb, "batch": args.batch})


if __name__ == "__main__":
    main()
