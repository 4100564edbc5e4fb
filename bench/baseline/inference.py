"""Baseline worker: images/s of gluon-face 1.0.2's MobileFaceNet (embedding only).

Built as its docs deploy it (``get_model('mobilefacenet', need_cls_layer=False)``),
initialised like its training script (MSRAPrelu), hybridized with static_alloc /
static_shape, float32.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "workers"))
from gluonfr.model_zoo import get_model  # noqa: E402  (gluon-face 1.0.2)

import _util  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="mobilefacenet")
    p.add_argument("--batches", default="1,32,128")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-iters", type=int, default=3)
    args = p.parse_args()
    out = {"model": args.model, "mode": "static", "images_per_s": {}, "timing": {}}
    for b in (int(s) for s in args.batches.split(",")):
        mx.random.seed(0)
        net = get_model(args.model, need_cls_layer=False)
        net.initialize(mx.init.MSRAPrelu())
        net.hybridize(static_alloc=True, static_shape=True)
        # its transforms feed ToTensor() output: float CHW in [0, 1]
        x = mx.nd.array(np.random.default_rng(0).uniform(0, 1, (b, 3, 112, 112)))
        times = _util.timed(lambda net=net, x=x: net(x).wait_to_read(), args.warmup,
                            args.seconds, args.min_iters)
        _util.record_rate(out, b, times)
    _util.emit(out)


if __name__ == "__main__":
    main()
