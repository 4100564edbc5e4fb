"""Baseline worker: images/s of gluon-face 1.0.2's training data pipeline.

``FRTrainRecordDataset`` + ``gluon.data.DataLoader`` as its training script builds them
(shuffle, last_batch discard), with the transform cut to what our loader does (random flip,
float CHW via ``ToTensor``; its script adds colour jitter on top).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "workers"))
from gluonfr.data import FRTrainRecordDataset  # noqa: E402  (gluon-face 1.0.2)

import _util  # noqa: E402
import numpy as np  # noqa: E402
from mxnet.gluon.data import DataLoader  # noqa: E402
from mxnet.gluon.data.vision import transforms  # noqa: E402

_IMAGE = transforms.Compose([transforms.RandomFlipLeftRight(), transforms.ToTensor()])


def _transform(img, label):
    return _IMAGE(img), label


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--root", required=True)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args()
    ds = FRTrainRecordDataset("synth", root=args.root, flag=1, transform=_transform)
    loader = DataLoader(ds, batch_size=args.batch, shuffle=True, num_workers=args.workers,
                        last_batch="discard")

    def epoch():
        n = 0
        for data, _ in loader:
            data.wait_to_read()
            n += data.shape[0]
        return n

    epoch()  # warm-up: starts the worker pool
    rates, start = [], time.perf_counter()
    while len(rates) < 2 or time.perf_counter() - start < args.seconds:
        t0 = time.perf_counter()
        n = epoch()
        rates.append(n / (time.perf_counter() - t0))
    _util.emit({"images_per_s": float(np.median(rates)), "epochs": rates, "mode": "gluon-face",
                "workers": args.workers, "dataset_len": len(ds)})


if __name__ == "__main__":
    main()
