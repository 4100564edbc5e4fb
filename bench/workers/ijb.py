"""Worker: IJB template pooling + 1:1 pair scoring at IJB-C's size, one implementation.

``--impl ours``: ``gluonfr.metrics.ijb.template_features`` + ``pair_scores`` (blocked,
vectorised). ``--impl straightforward``: the algorithm as insightface's IJB script lays it
out (a Python loop over templates with boolean masks over all images and a mean per media;
scores in 100,000-pair batches of fancy-indexed rows), written here as the comparison.
Both get the same random data (a fixed seed): image features, templates of several media,
pairs; the result has the times, the peak memory of the process (the inputs included) and
a sample of scores so the driver can check the two agree.
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gluonfr  # noqa: E402,F401  (numpy aliases before mxnet)
from gluonfr.metrics.ijb import pair_scores, template_features  # noqa: E402

import _util  # noqa: E402
import numpy as np  # noqa: E402


def make_data(images, templates, pairs, dim, seed=0):
    """Random IJB-shaped inputs: features (images, dim) float32, template / media ids, pairs."""
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((images, dim), dtype=np.float32)
    # every template gets at least one image; media ids run over templates (about 6 per one)
    tmpl = np.sort(np.r_[np.arange(templates), rng.integers(0, templates, images - templates)])
    medias = tmpl * 8 + rng.integers(0, 8, images)
    t1 = rng.integers(1, templates + 1, pairs)  # ids from 1, drawn in place: no temporaries
    t2 = rng.integers(1, templates + 1, pairs)
    return feats, tmpl + 1, medias, t1, t2


def straightforward_pool(feats, templates, medias):
    ids = np.unique(templates)
    out = np.zeros((len(ids), feats.shape[1]), dtype=np.float32)
    for k, t in enumerate(ids):
        in_t = np.where(templates == t)[0]
        face, media = feats[in_t], medias[in_t]
        parts = [face[media == m].mean(axis=0, keepdims=True) for m in np.unique(media)]
        out[k] = np.sum(np.concatenate(parts), axis=0)
    out /= np.sqrt(np.sum(out ** 2, axis=1, keepdims=True))
    return ids, out


def straightforward_scores(ids, feats, t1, t2, batch=100000):
    row = np.zeros(int(ids.max()) + 1, dtype=np.int64)
    row[ids] = np.arange(len(ids))
    scores = np.zeros(len(t1), dtype=np.float32)
    for start in range(0, len(t1), batch):
        a = feats[row[t1[start:start + batch]]]
        b = feats[row[t2[start:start + batch]]]
        scores[start:start + batch] = np.sum(a * b, axis=-1)
    return scores


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--impl", choices=("ours", "straightforward"), required=True)
    p.add_argument("--images", type=int, default=469375)
    p.add_argument("--templates", type=int, default=23124)
    p.add_argument("--pairs", type=int, default=15658489)
    p.add_argument("--dim", type=int, default=512)
    args = p.parse_args()
    feats, templates, medias, t1, t2 = make_data(args.images, args.templates, args.pairs,
                                                 args.dim)
    inputs_mib = _util.peak_rss_mib()
    pool, score = ((template_features, pair_scores) if args.impl == "ours"
                   else (straightforward_pool, straightforward_scores))
    t0 = time.perf_counter()
    ids, tfeats = pool(feats, templates, medias)
    t_pool = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = score(ids, tfeats, t1, t2)
    t_score = time.perf_counter() - t0
    sample = np.random.default_rng(1).integers(0, len(scores), 2000)
    _util.emit({"impl": args.impl, "pool_s": t_pool, "score_s": t_score,
                "total_s": t_pool + t_score, "inputs_peak_rss_mib": inputs_mib,
                "sample_scores": scores[sample].astype(float).tolist(),
                "images": args.images, "templates": args.templates, "pairs": args.pairs,
                "dim": args.dim})


if __name__ == "__main__":
    main()
