"""Baseline worker: gluon-face 1.0.2's ``FaceVerification`` on the same embeddings.

Fed as its training script feeds it (L2-normalised embeddings, ``update(issame, a, b)``), then
``get()``. On current scipy ``get()`` raises in ``calculate_val`` (``interp1d`` rejects the
repeated FAR values of its threshold grid), so its accuracy part (``calculate_roc``: plain L2
distance, thresholds ``arange(0, 2, 0.01)``, 10 folds) is also timed on its own.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "workers"))
from gluonfr.metrics import verification as gfv  # noqa: E402  (gluon-face 1.0.2)

import _util  # noqa: E402
import numpy as np  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--embeddings", required=True)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    data = np.load(args.embeddings)
    emb, issame = data["embeddings"], data["issame"].astype(bool)
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    metric = gfv.FaceVerification(nfolds=10)
    t0 = time.perf_counter()
    metric.update(issame, emb[0::2], emb[1::2])
    update_s = time.perf_counter() - t0
    error = None
    try:
        t0 = time.perf_counter()
        metric.get()
        get_s = time.perf_counter() - t0
    except Exception as err:  # noqa: BLE001 - the crash is the finding
        get_s = None
        error = f"{type(err).__name__}: {err}"
    dists, same = np.asarray(metric._dists), np.asarray(metric._issame)
    times, acc = [], None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        _, _, acc = gfv.calculate_roc(metric._thresholds, dists, same, 10)
        times.append(time.perf_counter() - t0)
    _util.emit({"pairs": int(len(issame)), "update_s": update_s, "get_s": get_s,
                "get_error": error, "accuracy_part_s": statistics.median(times) + update_s,
                "accuracy": float(np.mean(acc))})


if __name__ == "__main__":
    main()
