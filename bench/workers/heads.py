"""Worker: forward + backward time of one of our heads (NormDense + ArcFace by default).

The head is the one the training engine builds (``gluonfr.engine.head.build_heads`` for a
``--loss`` config, hybridized with static_alloc / static_shape as the engine does); with
``--fast-backward`` the loss uses ``SoftmaxHeadLoss(fast_backward=True)`` instead.
Gradients flow to the class centres and to the embeddings (as in training).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gluonfr  # noqa: E402,F401  (numpy aliases before mxnet)
from gluonfr.engine import TrainConfig  # noqa: E402
from gluonfr.engine.head import TrainHead, build_heads  # noqa: E402
from gluonfr.loss import ArcFaceLoss  # noqa: E402
from gluonfr.nn import NormDense  # noqa: E402

import _util  # noqa: E402
import mxnet as mx  # noqa: E402
from mxnet import autograd  # noqa: E402


def main():
    p = _util.add_step_args(argparse.ArgumentParser(description=__doc__), 128, seconds=3.0)
    p.add_argument("--emb", type=int, default=128)
    p.add_argument("--fast-backward", action="store_true")
    p.add_argument("--loss", default="arcface",
                   help="any classification head of gluonfr.loss.get_loss_list()")
    args = p.parse_args()
    mx.random.seed(0)
    if args.fast_backward:
        head = TrainHead(NormDense(args.classes, args.emb, prefix="fc7_"),
                         ArcFaceLoss(s=64.0, m=0.5, check_label=False, fast_backward=True),
                         prefix="head_")
    else:
        cfg = TrainConfig(loss=args.loss, max_iters=1, batch_size=args.batch)
        head, _ = build_heads(cfg, args.classes, args.emb)
    head.initialize(mx.init.Xavier())
    head.hybridize(static_alloc=True, static_shape=True)
    emb, label = _util.random_head_inputs(args.classes, args.batch, args.emb)

    def step():
        with autograd.record():
            loss, _ = head(emb, label)
        loss.backward()
        mx.nd.waitall()

    times = _util.timed(step, args.warmup, args.seconds, min_iters=3)
    stats = _util.summarise(times)
    _util.emit({"ms": 1000 * stats["median_s"], "timing": stats, "classes": args.classes,
                "emb": args.emb, "batch": args.batch, "fast_backward": args.fast_backward,
                "loss": args.loss})


if __name__ == "__main__":
    main()
