"""Worker: images/s of training-data pipelines on the same JPEG records.

Modes
-----
prepare   write the procedural dataset (insightface layout) under ``--root``/synth and a plain
          copy of the same JPEG bytes (no header or identity records) under ``--root``/plain,
          which is the layout ``mx.io.ImageRecordIter`` can read; cached
loader    ours: ``gluonfr.data.make_train_loader`` (read + decode + flip + batch to float32
          NCHW NDArrays), ``--workers`` processes
floor     ``cv2.imdecode`` of the same bytes in a tight loop on one core (the decode floor)
recordio  MXNet's C++ ``mx.io.ImageRecordIter`` on the plain copy (decode + mirror + batch)
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gluonfr  # noqa: E402,F401  (numpy aliases before mxnet)
from gluonfr.data import FaceRecordDataset, make_train_loader  # noqa: E402
from gluonfr.utils.fileio import atomic_open  # noqa: E402

import _util  # noqa: E402
import numpy as np  # noqa: E402


def prepare(root, ids, per_id):
    from gluonfr.data.recordio import RecordWriter
    from gluonfr.data.synthetic import make_dataset

    stamp = os.path.join(root, "ready.json")
    want = {"ids": ids, "per_id": per_id, "version": 1}
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == want:
                return {"cached": True}
    make_dataset(os.path.join(root, "synth"), ids, per_id, num_pairs=20, seed=0,
                 num_workers=os.cpu_count() or 1)
    ds = FaceRecordDataset(os.path.join(root, "synth"))
    with RecordWriter(os.path.join(root, "plain"), image_size=ds.image_size,
                      header=False) as writer:
        for i in range(len(ds)):
            buf, label = ds.read(i)
            writer.add(label, bytes(buf))
    with atomic_open(stamp, "w") as f:
        json.dump(want, f)
    return {"cached": False}


def _epochs(run_epoch, seconds, min_epochs=2):
    """images/s of each epoch after a warm-up epoch (which starts workers, warms caches)."""
    run_epoch()
    rates, start = [], time.perf_counter()
    while len(rates) < min_epochs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        n = run_epoch()
        rates.append(n / (time.perf_counter() - t0))
    return rates


def loader(root, workers, batch, seconds):
    it = make_train_loader(os.path.join(root, "synth"), batch, num_workers=workers, seed=0,
                           flip=True)

    def epoch():
        n = 0
        for data, _ in it:
            data.wait_to_read()
            n += data.shape[0]
        return n

    try:
        return _epochs(epoch, seconds)
    finally:
        it.close()


def floor(root, seconds):
    import cv2

    cv2.setNumThreads(1)
    ds = FaceRecordDataset(os.path.join(root, "synth"))
    bufs = [np.frombuffer(ds.read(i)[0], dtype=np.uint8) for i in range(len(ds))]

    def epoch():
        for b in bufs:
            cv2.imdecode(b, cv2.IMREAD_COLOR)
        return len(bufs)

    return _epochs(epoch, seconds)


def recordio(root, batch, seconds, threads):
    import mxnet as mx

    plain = os.path.join(root, "plain")
    it = mx.io.ImageRecordIter(path_imgrec=os.path.join(plain, "train.rec"),
                               path_imgidx=os.path.join(plain, "train.idx"),
                               data_shape=(3, 112, 112), batch_size=batch, shuffle=True,
                               rand_mirror=True, preprocess_threads=threads, seed=0)

    def epoch():
        it.reset()
        n = 0
        for b in it:
            b.data[0].wait_to_read()
            n += batch - b.pad
        return n

    return _epochs(epoch, seconds)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("prepare", "loader", "floor", "recordio"), required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--ids", type=int, default=100)
    p.add_argument("--per-id", type=int, default=20)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=4, help="ImageRecordIter preprocess_threads")
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args()
    if args.mode == "prepare":
        _util.emit(prepare(args.root, args.ids, args.per_id))
        return
    if args.mode == "loader":
        rates = loader(args.root, args.workers, args.batch, args.seconds)
    elif args.mode == "floor":
        rates = floor(args.root, args.seconds)
    else:
        rates = recordio(args.root, args.batch, args.seconds, args.threads)
    _util.emit({"images_per_s": float(np.median(rates)), "epochs": rates, "mode": args.mode,
                "workers": args.workers, "threads": args.threads})


if __name__ == "__main__":
    main()
