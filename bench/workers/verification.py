"""Worker: time of the verification protocol, ours vs the loop reference; embedding extraction.

``--mode metric``: ``gluonfr.metrics.verification`` (the whole call: accuracy, VAL@FAR, ROC,
AUC, EER, TAR@FAR) against the straightforward loop reference of
``tests/test_metrics_verification.py`` (insightface's algorithm, threshold by threshold) on the
same embeddings, checking that the numbers are identical.
``--mode extract``: seconds per image of ``gluonfr.metrics.extract_embeddings`` (MobileFaceNet,
flip on, as evaluation runs), for the cost of embedding a verification set.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# the loop reference lives with the tests; importing it keeps one copy of it
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests"))
import gluonfr  # noqa: E402,F401  (numpy aliases before mxnet)
from gluonfr.metrics import verification  # noqa: E402

import _util  # noqa: E402
import numpy as np  # noqa: E402
import test_metrics_verification as reference  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402
from sklearn.preprocessing import normalize  # noqa: E402


def loop_accuracy(embeddings, issame, nfolds=10):
    """The accuracy half of ``reference.loop_reference`` alone (the facenet/insightface loop
    over folds x 400 thresholds, with TPR/FPR per threshold), timed on its own."""
    emb = normalize(np.asarray(embeddings))
    dist = np.sum(np.square(emb[0::2] - emb[1::2]), 1)
    issame = np.asarray(issame, dtype=bool)
    thresholds = np.arange(0, 4, 0.01)
    accuracy = []
    for train, test in KFold(nfolds, shuffle=False).split(np.arange(len(dist))):
        acc_train = [reference._loop_accuracy(t, dist[train], issame[train])[2]
                     for t in thresholds]
        b = int(np.argmax(acc_train))
        [reference._loop_accuracy(t, dist[test], issame[test]) for t in thresholds]  # ROC
        accuracy.append(reference._loop_accuracy(thresholds[b], dist[test], issame[test])[2])
    return float(np.mean(accuracy))


def _clock(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def metric(path, repeat, loop_repeat):
    data = np.load(path)
    emb, issame = data["embeddings"], data["issame"]
    t_ours, ours = _clock(lambda: verification(emb, issame), repeat)
    t_acc, acc_loop = _clock(lambda: loop_accuracy(emb, issame), loop_repeat)
    t_full, ref = _clock(lambda: reference.loop_reference(emb, issame), loop_repeat)
    same = {
        "accuracy": bool(ours["accuracy"] == ref["accuracy"] == acc_loop),
        "fold_accuracy": bool(np.array_equal(ours["fold_accuracy"], ref["fold_accuracy"])),
        "threshold": bool(ours["threshold"] == ref["threshold"]),
        "tpr_fpr": bool(np.array_equal(ours["tpr"], ref["tpr"])
                        and np.array_equal(ours["fpr"], ref["fpr"])),
        "val": bool(ours["val"] == ref["val"] and ours["far"] == ref["far"]),
    }
    return {"pairs": int(len(issame)), "ours_s": t_ours, "loop_accuracy_s": t_acc,
            "loop_full_s": t_full, "accuracy": ours["accuracy"], "val": ours["val"],
            "auc": ours["auc"], "eer": ours["eer"], "loop_accuracy": acc_loop,
            "loop_val": float(ref["val"]), "identical": same}


def extract(images, batch):
    from gluonfr.metrics import extract_embeddings
    from gluonfr.model_zoo import get_model

    import mxnet as mx

    mx.random.seed(0)
    net = get_model("mobilefacenet")
    net.hybridize(static_alloc=True, static_shape=True)
    x = np.random.default_rng(0).integers(0, 256, (images, 112, 112, 3), dtype=np.uint8)
    extract_embeddings(net, x[:batch], batch_size=batch, progress=False)  # warm-up
    t0 = time.perf_counter()
    extract_embeddings(net, x, batch_size=batch, progress=False)
    seconds = time.perf_counter() - t0
    return {"images": images, "batch": batch, "seconds": seconds,
            "seconds_per_image": seconds / images}


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mode", choices=("metric", "extract"), default="metric")
    p.add_argument("--embeddings", help="npz with embeddings (2P, D) and issame (P,)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--loop-repeat", type=int, default=1)
    p.add_argument("--images", type=int, default=640)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    if args.mode == "metric":
        _util.emit(metric(args.embeddings, args.repeat, args.loop_repeat))
    else:
        _util.emit(extract(args.images, args.batch))


if __name__ == "__main__":
    main()
