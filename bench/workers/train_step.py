"""Worker: samples/s and peak memory of our engine's training step.

MobileFaceNet + NormDense + ArcFace as ``gluonfr.engine.TrainLoop`` builds them (hybridized
backbone and head, the CPU micro-batches unless ``--micro-batch`` says otherwise, NAG like
gluon-face's script), timing
``TrainLoop.step`` -- the function ``train`` runs per iteration -- on a fixed random batch, so
that data loading is not part of the figure (bench/data.py measures it). ``--native-prelu``
trains with the textbook ``LeakyReLU(act_type='prelu')`` op (``gluonfr.nn.native_prelu``): the
library before its oneDNN PReLU.
"""
import argparse
import contextlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gluonfr  # noqa: E402,F401  (numpy aliases before mxnet)
from gluonfr.engine import TrainConfig, TrainLoop  # noqa: E402
from gluonfr.model_zoo import get_model  # noqa: E402
from gluonfr.nn import native_prelu  # noqa: E402

import _util  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402


class _ShapeOnlyDataset:
    """Tells the loop the class count and image size; the step is fed fixed batches."""

    image_size = (112, 112)

    def __init__(self, num_classes, num_images):
        self.num_classes = num_classes
        self._n = num_images

    def __len__(self):
        return self._n

    def __getitem__(self, i):
        raise RuntimeError("the benchmark feeds TrainLoop.step directly")


def main():
    p = _util.add_step_args(argparse.ArgumentParser(description=__doc__), 64, iters=4)
    p.add_argument("--model", default="mobilefacenet")
    p.add_argument("--native-prelu", action="store_true")
    p.add_argument("--micro-batch", type=int, default=None,
                   help="default: the library's (micro-batches of 16 on the CPU)")
    args = p.parse_args()
    backbone = get_model(args.model, ctx=mx.cpu())
    with tempfile.TemporaryDirectory() as save_dir, \
            native_prelu(backbone) if args.native_prelu else contextlib.nullcontext():
        cfg = TrainConfig(model=args.model, loss="arcface", batch_size=args.batch,
                          micro_batch=args.micro_batch,
                          optimizer="nag", lr=0.1, momentum=0.9, wd=5e-4, max_iters=1000,
                          num_workers=0, val_interval=0, save_interval=0, tensorboard="",
                          progress=False, log_interval=10 ** 6, save_dir=save_dir)
        loop = TrainLoop(cfg, backbone=backbone,
                         dataset=_ShapeOnlyDataset(args.classes, 100 * args.batch))
        rng = np.random.default_rng(0)
        data = mx.nd.array(rng.uniform(0, 255, (args.batch, 3, 112, 112)))
        label = mx.nd.array(rng.integers(0, args.classes, args.batch))

        def step():
            loop.step(data, label)
            loop.iteration += 1
            mx.nd.waitall()

        times = _util.timed(step, args.warmup, seconds=0, min_iters=args.iters,
                            max_iters=args.iters)
        stats = loop.sync_metrics()
    t = _util.summarise(times)
    _util.emit({"samples_per_s": args.batch / t["median_s"], "timing": t,
                "classes": args.classes, "batch": args.batch, "mean_loss": stats["loss"],
                "native_prelu": args.native_prelu, "micro_batch": args.micro_batch,
                "chunks": loop.chunks})


if __name__ == "__main__":
    main()
