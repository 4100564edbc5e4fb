"""The insightface face-verification protocol, vectorised.

:func:`verification` gives the numbers every LFW / CFP-FP / AgeDB-30 paper reports (10-fold
accuracy with a threshold picked on the other 9 folds, and VAL@FAR), computed exactly as
insightface's ``verification.py`` does but from one pass of counting instead of a Python loop
over folds and thresholds. :func:`tar_at_far` reads TAR at fixed FARs off the ROC of a large
pair set (IJB-B / IJB-C style).

Protocol (insightface ``arcface_mxnet/verification.py``; ``arcface_torch`` is the same):

- embeddings are L2-normalised row-wise; pair ``i`` is rows ``2i`` and ``2i+1``;
  the distance is the squared L2 distance ``sum((e1 - e2)**2)`` (``2 - 2 cos``, in [0, 4]);
- ``KFold(nfolds, shuffle=False)``: contiguous folds, which for LFW are exactly the 10 official
  ``pairs.txt`` splits (never shuffle, or numbers stop being comparable);
- accuracy: thresholds ``arange(0, 4, 0.01)``, a pair is called "same" when ``dist < thr``;
  per fold the threshold with the best accuracy on the training folds (ties: the smallest
  threshold), then the accuracy on the held-out fold; reported as mean +- std (ddof 0);
- VAL@FAR: thresholds ``arange(0, 4, 0.001)``; per fold the threshold whose training-fold FAR
  is ``far_target`` (linear interpolation, see :func:`threshold_at_far`), then VAL (true
  accepts / same pairs) and FAR (false accepts / different pairs) on the held-out fold.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["verification", "pair_distances", "threshold_at_far", "tar_at_far", "roc_points",
           "equal_error_rate", "ACC_THRESHOLDS", "VAL_THRESHOLDS", "DEFAULT_FARS"]

#: insightface's threshold grid for the accuracy / ROC part.
ACC_THRESHOLDS = np.arange(0, 4, 0.01)
#: insightface's finer grid for VAL@FAR.
VAL_THRESHOLDS = np.arange(0, 4, 0.001)
#: The FARs of IJB-B / IJB-C tables.
DEFAULT_FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
ACC_THRESHOLDS.setflags(write=False)
VAL_THRESHOLDS.setflags(write=False)
# Distances are computed in blocks of about this many bytes of embeddings: small enough for
# the temporaries to stay in cache, large enough to amortise numpy's per-call overhead
# (measured: docs/performance.rst, "Smaller design choices").
_BLOCK_BYTES = 1 << 20
_DISTANCE_THREADS = min(4, os.cpu_count() or 1)
_POOL = None


def _thread_pool():
    """One pool for the life of the process: starting threads on every call costs more than a
    128-d distance computation."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(_DISTANCE_THREADS, thread_name_prefix="gluonfr-distances")
    return _POOL


def _forget_pool():
    # a forked child inherits the pool object but not its threads: work sent to it would hang
    global _POOL
    _POOL = None


os.register_at_fork(after_in_child=_forget_pool)


def pair_distances(embeddings):
    """Squared L2 distance between the L2-normalised rows ``2i`` and ``2i+1``.

    Parameters
    ----------
    embeddings : array_like, (2P, D)
        Raw (unnormalised) embeddings in pair order. float32 stays float32, as in insightface
        (whose distances come from the float32 network output); other types become float64.

    Returns
    -------
    numpy.ndarray, (P,)
    """
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] < 2 or emb.shape[0] % 2:
        raise ValueError(f"embeddings must be a (2P, D) array with rows (2i, 2i+1) forming pair "
                         f"i; got shape {emb.shape}")
    if emb.dtype != np.float32:
        emb = emb.astype(np.float64)
    num_pairs = emb.shape[0] // 2
    dist = np.empty(num_pairs, dtype=emb.dtype)
    block = max(16, _BLOCK_BYTES // (2 * emb.shape[1] * emb.itemsize))
    starts = range(0, num_pairs, block)
    workers = max(1, min(_DISTANCE_THREADS, len(starts)))
    if workers == 1:
        _distance_blocks(emb, dist, starts, block)
    else:
        # numpy's ufuncs and einsum release the GIL: blocks split across threads scale with cores
        list(_thread_pool().map(lambda k: _distance_blocks(emb, dist, starts[k::workers], block),
                                range(workers)))
    if not np.isfinite(dist).all():  # NaN / inf anywhere in a row ends up here
        raise ValueError("embeddings contain NaN or inf (has the model diverged?)")
    return dist


def _distance_blocks(emb, dist, starts, block):
    """Fill ``dist`` for the blocks of ``block`` pairs beginning at ``starts``.

    Blocks keep the temporaries in cache, and the two buffers are reused: fresh megabyte
    temporaries are mmap'ed and page-faulted on every block, which cost more than the
    arithmetic. :func:`l2_normalize` per block, so the bits are those of a whole-array call.
    """
    size = min(len(dist), block)
    unit = np.empty((2 * size, emb.shape[1]), dtype=emb.dtype)
    diff = np.empty((size, emb.shape[1]), dtype=emb.dtype)
    for start in starts:
        rows = emb[2 * start:2 * (start + block)]
        n = len(rows) // 2
        l2_normalize(rows, out=unit[:2 * n])
        np.subtract(unit[0:2 * n:2], unit[1:2 * n:2], out=diff[:n])
        np.square(diff[:n], out=diff[:n])
        np.sum(diff[:n], axis=1, out=dist[start:start + n])


def l2_normalize(emb, out=None):
    """Row-wise L2 normalisation computed as ``sklearn.preprocessing.normalize`` does (which
    insightface calls): ``sqrt(einsum('ij,ij->i'))`` norms, zero norms left as 1, one
    division; bit-identical to it, without its input-validation overhead. ``out`` receives
    the result when given."""
    norms = np.sqrt(np.einsum("ij,ij->i", emb, emb))
    norms[norms == 0] = 1
    return np.divide(emb, norms[:, np.newaxis], out=out)


def _fold_of_pairs(num_pairs, nfolds):
    """Fold index of every pair: sklearn ``KFold(nfolds, shuffle=False)`` test folds.

    ``nfolds == 1`` follows insightface's ``LFold``: one fold that is both train and test.
    """
    if int(nfolds) != nfolds or nfolds < 1:
        raise ValueError(f"nfolds must be a positive integer, got {nfolds!r}")
    nfolds = int(nfolds)
    if num_pairs < nfolds:
        raise ValueError(f"{num_pairs} pairs cannot be split into nfolds={nfolds} folds")
    if nfolds == 1:
        return np.zeros(num_pairs, dtype=np.intp)
    # KFold's sizes: num_pairs // nfolds each, one more for the first num_pairs % nfolds folds
    sizes = np.full(nfolds, num_pairs // nfolds)
    sizes[:num_pairs % nfolds] += 1
    return np.repeat(np.arange(nfolds, dtype=np.intp), sizes)


def _counts_below(dist, issame, fold, nfolds, thresholds):
    """Pairs with ``dist < thr`` for every threshold, per fold and class, by counting once.

    A pair is accepted at threshold ``j`` iff ``j >= rank``, where ``rank`` is the number of
    thresholds ``<= dist``; a histogram of ranks per (fold, class) and a cumulative sum give
    every count at once, in O(P + folds x thresholds).

    Returns
    -------
    below : int array (nfolds, 2, T)
        ``below[f, c, j]``: pairs of fold ``f`` and class ``c`` (0 different, 1 same) with
        ``dist < thresholds[j]``.
    total : int array (nfolds, 2)
        Pairs per fold and class.
    """
    num_thr = len(thresholds)
    # Compared in the distances' dtype: numpy 1.x compares a float32 array with a float64
    # scalar in float32, so insightface's `dist < threshold` did.
    thresholds = np.asarray(thresholds).astype(dist.dtype)
    rank = np.searchsorted(thresholds, dist, side="right")  # NaN sorts last: never accepted
    cell = (fold * 2 + issame) * (num_thr + 1) + rank
    hist = np.bincount(cell, minlength=nfolds * 2 * (num_thr + 1))
    hist = hist.reshape(nfolds, 2, num_thr + 1)
    return np.cumsum(hist[:, :, :num_thr], axis=2), hist.sum(axis=2)


def _train_counts(below, total):
    """Counts over the training folds (all folds but one; the only fold when nfolds is 1)."""
    if below.shape[0] == 1:
        return below, total
    return below.sum(axis=0, keepdims=True) - below, total.sum(axis=0, keepdims=True) - total


def _ratio(num, den):
    """``num / den`` with 0 where ``den`` is 0 (insightface's convention for TPR / FPR)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.broadcast_to(np.asarray(den, dtype=np.float64), num.shape)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def threshold_at_far(far, thresholds, far_target):
    """The threshold at which a FAR curve reaches ``far_target``, as insightface computes it.

    insightface calls ``scipy.interpolate.interp1d(far, thresholds, kind='slinear')
    (far_target)`` when ``max(far) >= far_target`` and uses 0 otherwise. A FAR curve on a grid
    of thresholds always repeats values (it is a step function of the threshold), which
    current scipy refuses ("Expect x to not have duplicates"; 1.9.3 does, 1.8.1 does not).
    This function reproduces, without scipy, what scipy 1.6 - 1.8 returned; the arithmetic is
    the same, so the numbers agree to the last bit:

    - ``interp1d`` sorted ``far`` with a stable sort (a no-op for a non-decreasing curve), and
      ``make_interp_spline(k=1)`` built a degree-1 B-spline with knots ``[x0, x0, x1, ...,
      x_last, x_last]`` and coefficients ``thresholds``, with no check for repeated ``x``;
    - evaluation finds the last knot ``<= far_target``, so with ``i`` the *last* index with
      ``far[i] <= far_target`` (at most ``n - 2``) the result is the linear interpolation on
      ``(far[i], thresholds[i])`` - ``(far[i+1], thresholds[i+1])``, computed by de Boor's
      recursion as ``w = 1 / (far[i+1] - far[i])``,
      ``thresholds[i] * (w * (far[i+1] - t)) + thresholds[i+1] * (w * (t - far[i]))``;
      when ``far_target`` sits on a run of equal FAR values, that is the run's last threshold;
    - a zero-length segment contributes 0 (de Boor's convention), which happens only when
      ``far_target`` equals ``max(far)`` and the last two values are equal: the threshold is
      then 0, as old scipy returned.

    Checked against scipy 1.8.1 itself running insightface's ``calculate_val``: the same fold
    thresholds, bit for bit, and the same VAL / FAR in 24 of 24 simulated pair sets.

    scipy 0.19 - 1.5 sorted with numpy's default (unstable) quicksort instead, which permutes
    the thresholds inside a run of equal FAR values, so those versions returned another
    threshold of the same run in almost every fold. That is an artefact of the sort, not a
    defined rule: against scipy 1.5.4 the VAL of the same 24 sets differs by up to 0.006 for
    6,000-pair sets with VAL > 0.9, and by up to 0.14 for small sets with a weak model.

    Parameters
    ----------
    far : array_like, (T,) or (F, T)
        Non-decreasing FAR per threshold (one row per fold).
    thresholds : array_like, (T,)
        Increasing thresholds.
    far_target : float

    Returns
    -------
    float or numpy.ndarray (F,)
    """
    far = np.asarray(far, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    single = far.ndim == 1
    far = np.atleast_2d(far)
    num_thr = far.shape[1]
    if num_thr != len(thresholds) or num_thr < 2:
        raise ValueError(f"far has {num_thr} values per row and thresholds {len(thresholds)}; "
                         "they must match and be at least 2")
    if np.any(np.diff(far, axis=1) < 0):
        raise ValueError("far must be non-decreasing along the thresholds")
    target = float(far_target)
    reached = far[:, -1] >= target
    if np.any(reached & (far[:, 0] > target)):
        # interp1d raised here (below its range); a FAR curve starting at threshold 0 starts at 0
        raise ValueError(f"far_target {target} is below the first FAR value {far[:, 0].min()}")
    last = np.count_nonzero(far <= target, axis=1) - 1
    i = np.clip(last, 0, num_thr - 2)
    rows = np.arange(far.shape[0])
    xa, xb = far[rows, i], far[rows, i + 1]
    ya, yb = thresholds[i], thresholds[i + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = 1.0 / (xb - xa)
        value = ya * (w * (xb - target)) + yb * (w * (target - xa))
    value = np.where(xb == xa, 0.0, value)
    value = np.where(reached, value, 0.0)
    return float(value[0]) if single else value


def equal_error_rate(fpr, tpr):
    """The equal error rate (FAR = FRR) of an ROC, by linear interpolation between its points.

    Parameters
    ----------
    fpr, tpr : array_like
        ROC points ordered by threshold (as from ``sklearn.metrics.roc_curve``), from (0, 0)
        towards (1, 1).

    Returns
    -------
    float
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    gap = (1.0 - tpr) - fpr  # FRR - FAR: decreases along the ROC
    cross = np.flatnonzero(gap <= 0)
    if not len(cross):
        return float("nan")
    k = cross[0]
    if k == 0:
        return float(fpr[0])
    a = gap[k - 1] / (gap[k - 1] - gap[k])
    return float(fpr[k - 1] + a * (fpr[k] - fpr[k - 1]))


def roc_points(issame, scores):
    """The ROC of a pair set: the points ``sklearn.metrics.roc_curve(issame, scores)`` returns.

    One point per distinct score (a pair is accepted when its score is ``>=`` the threshold),
    without the points that lie on a straight horizontal or vertical run, and ``(0, 0)`` at
    threshold ``inf`` first; the same arrays, value for value, as scikit-learn >= 1.3 gives
    with ``drop_intermediate=True``. Written out because sklearn's input checks cost more than
    the curve itself on a 6,000-pair set.

    Parameters
    ----------
    issame : array_like of bool, (P,)
    scores : array_like, (P,)
        Similarities: higher means "same".

    Returns
    -------
    fpr, tpr, thresholds : numpy.ndarray
    """
    issame = np.asarray(issame).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(scores, kind="stable")[::-1]
    return _roc_of_ranked(scores[order], issame[order])


def _roc_of_ranked(scores, issame):
    """:func:`roc_points` of pairs already ordered by decreasing score."""
    # the last pair of every run of equal scores: the ROC moves once per distinct score
    ends = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(issame)[ends]
    fps = ends + 1 - tps
    if tps.size > 2:
        # a point whose neighbours are collinear with it on an axis-parallel run adds nothing
        keep = np.r_[True, (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), True]
        tps, fps, ends = tps[keep], fps[keep], ends[keep]
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    thresholds = np.r_[np.inf, scores[ends]]
    with np.errstate(divide="ignore", invalid="ignore"):  # one class absent: nan, as sklearn
        return fps / fps[-1], tps / tps[-1], thresholds


def _tar_from_roc(fpr, tpr, thresholds, fars):
    """insightface's IJB rule: per FAR, the ROC point with the closest FAR; among equally
    close points the highest TAR (the first of the reversed ROC)."""
    fpr, tpr, thresholds = fpr[::-1], tpr[::-1], thresholds[::-1]
    fars = [float(f) for f in fars]
    idx = np.argmin(np.abs(fpr[None, :] - np.asarray(fars)[:, None]), axis=1)
    return ({f: float(tpr[i]) for f, i in zip(fars, idx)},
            {f: float(thresholds[i]) for f, i in zip(fars, idx)})


def tar_at_far(issame, scores, fars=DEFAULT_FARS, return_thresholds=False):
    """TAR at fixed FARs, read off the ROC as insightface's IJB-B / IJB-C evaluation does.

    The ROC is :func:`roc_points` (``sklearn.metrics.roc_curve(issame, scores)``); for each FAR
    the ROC point with the closest false accept rate is taken, and among equally close points
    the one with the highest TAR. FARs below ``1 / (number of different pairs)`` cannot be
    measured: they come out as the TAR at the smallest measured FAR (usually 0).

    Parameters
    ----------
    issame : array_like of bool, (P,)
    scores : array_like, (P,)
        Similarities: higher means "same" (cosine; or minus a distance).
    fars : sequence of float
    return_thresholds : bool
        Also return the score threshold of each chosen ROC point.

    Returns
    -------
    dict
        ``{far: tar}`` in the order of ``fars``; with ``return_thresholds`` a second dict
        ``{far: threshold}`` (a pair is accepted when its score is ``>=`` the threshold).
    """
    issame = np.asarray(issame).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if issame.shape != scores.shape:
        raise ValueError(f"issame has {issame.size} entries but scores {scores.size}")
    if issame.all() or not issame.any():
        raise ValueError("tar_at_far needs both same and different pairs")
    fpr, tpr, thr = roc_points(issame, scores)
    tars, thresholds = _tar_from_roc(fpr, tpr, thr, fars)
    return (tars, thresholds) if return_thresholds else tars


def verification(embeddings, issame, nfolds=10, far_target=1e-3):
    """Face-verification accuracy and VAL@FAR with insightface's k-fold protocol.

    Parameters
    ----------
    embeddings : array_like, (2P, D)
        Pair ``i`` is rows ``2i`` and ``2i+1``, already flip-combined if flip is wanted
        (see :func:`gluonfr.metrics.extract_embeddings`); L2-normalised here.
    issame : array_like of bool, (P,)
    nfolds : int
        Contiguous folds, no shuffling (10 for every published benchmark). 1 means the whole
        set is both train and test, like insightface's ``LFold``.
    far_target : float
        FAR for VAL@FAR.

    Returns
    -------
    dict
        ``accuracy``, ``accuracy_std``
            Mean and std (ddof 0) of the held-out fold accuracies; insightface prints them as
            ``Accuracy-Flip: 0.99783+-0.00250``.
        ``threshold``
            Mean over folds of the chosen distance threshold (squared L2, in [0, 4]).
        ``val``, ``val_std``, ``far``
            VAL (mean, std) and mean FAR of the held-out folds at the thresholds whose
            training FAR is ``far_target`` (see :func:`threshold_at_far`).
        ``tpr``, ``fpr``, ``thresholds``
            insightface's ROC: TPR / FPR of every threshold of ``arange(0, 4, 0.01)`` on each
            held-out fold, averaged over folds (arrays of 400).
        ``auc``, ``eer``
            Area under the ROC and equal error rate, from the exact ROC of all pairs
            (:func:`roc_points` on ``-dist``), which no threshold grid limits;
            NaN if one class is missing.
        ``roc_fpr``, ``roc_tpr``
            That exact ROC (for plots on a log-FAR axis).
        ``tar_at_far``
            ``{far: tar}`` on that ROC for :data:`DEFAULT_FARS` (see :func:`tar_at_far`; FARs
            below ``1 / different pairs`` are not measurable on small sets).
        ``fold_accuracy``, ``fold_threshold``, ``fold_val``, ``fold_far``, ``val_threshold``
            Per-fold values.
        ``num_pairs``, ``num_same``, ``num_diff``, ``nfolds``, ``far_target``
            Counts and settings of the call.

    Notes
    -----
    A held-out fold without same (or different) pairs gets VAL (or FAR) 0 where insightface
    would divide by zero; TPR / FPR use the same convention, as insightface does.
    """
    dist = pair_distances(embeddings)
    issame = np.asarray(issame)
    if issame.ndim != 1 or issame.dtype.kind not in "biuf" or (
            issame.dtype != bool and not ((issame == 0) | (issame == 1)).all()):
        raise ValueError(f"issame must be a flat array of bools (or 0/1), got dtype "
                         f"{issame.dtype}, shape {issame.shape}")
    if len(issame) != len(dist):
        raise ValueError(f"{len(dist) * 2} embeddings make {len(dist)} pairs but issame has "
                         f"{len(issame)} entries")
    fold = _fold_of_pairs(len(dist), nfolds)
    # Pairs in order of distance: the counts below find their thresholds faster with sorted
    # keys, and the exact ROC needs that order anyway. Counting does not depend on the order.
    order = np.argsort(dist, kind="stable")
    dist, issame, fold = dist[order], issame[order].astype(bool), fold[order]
    same = issame.astype(np.intp)
    nfolds = int(nfolds)
    rows = np.arange(nfolds)

    # Accuracy: threshold chosen on the training folds, accuracy on the held-out fold.
    below, total = _counts_below(dist, same, fold, nfolds, ACC_THRESHOLDS)
    train_below, train_total = _train_counts(below, total)
    # Correct decisions = true accepts + true rejects; its first argmax is the smallest
    # threshold of the best training accuracy, as np.argmax over insightface's float accuracy.
    correct = train_below[:, 1] + (train_total[:, 0:1] - train_below[:, 0])
    best = np.argmax(correct, axis=1)
    test_correct = below[rows, 1, best] + (total[:, 0] - below[rows, 0, best])
    fold_accuracy = test_correct / total.sum(axis=1)
    tprs = _ratio(below[:, 1], total[:, 1:2])
    fprs = _ratio(below[:, 0], total[:, 0:1])

    # VAL@FAR: the threshold reaching far_target on the training folds, measured on the test.
    below_v, total_v = _counts_below(dist, same, fold, nfolds, VAL_THRESHOLDS)
    train_below_v, train_total_v = _train_counts(below_v, total_v)
    far_train = _ratio(train_below_v[:, 0], train_total_v[:, 0:1])
    val_threshold = threshold_at_far(far_train, VAL_THRESHOLDS, far_target)
    accepted = dist < val_threshold.astype(dist.dtype)[fold]  # dtype: see _counts_below
    accepts = np.bincount(fold * 2 + same, weights=accepted.astype(np.float64),
                          minlength=2 * nfolds)
    accepts = accepts.reshape(nfolds, 2)
    fold_val = _ratio(accepts[:, 1], total[:, 1])
    fold_far = _ratio(accepts[:, 0], total[:, 0])

    result = {
        "accuracy": float(np.mean(fold_accuracy)),
        "accuracy_std": float(np.std(fold_accuracy)),
        "threshold": float(np.mean(ACC_THRESHOLDS[best])),
        "val": float(np.mean(fold_val)),
        "val_std": float(np.std(fold_val)),
        "far": float(np.mean(fold_far)),
        "tpr": np.mean(tprs, 0),
        "fpr": np.mean(fprs, 0),
        "thresholds": np.array(ACC_THRESHOLDS),
        "fold_accuracy": fold_accuracy,
        "fold_threshold": ACC_THRESHOLDS[best],
        "fold_val": fold_val,
        "fold_far": fold_far,
        "val_threshold": val_threshold,
        "num_pairs": int(len(dist)),
        "num_same": int(total[:, 1].sum()),
        "num_diff": int(total[:, 0].sum()),
        "nfolds": nfolds,
        "far_target": float(far_target),
    }
    result.update(_exact_roc(dist, issame))
    return result


def _exact_roc(dist, issame):
    """AUC, EER and the ROC of all pairs, with ``-dist`` as the score; ``dist`` ascending."""
    if issame.all() or not issame.any():
        return {"auc": float("nan"), "eer": float("nan"), "roc_fpr": np.zeros(0),
                "roc_tpr": np.zeros(0), "tar_at_far": {}}
    fpr, tpr, thr = _roc_of_ranked(-dist.astype(np.float64), issame)
    # the trapezoid rule, as sklearn.metrics.auc computes it (its input checks cost more)
    area = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0)
    return {"auc": float(area), "eer": equal_error_rate(fpr, tpr),
            "roc_fpr": fpr, "roc_tpr": tpr,
            "tar_at_far": _tar_from_roc(fpr, tpr, thr, DEFAULT_FARS)[0]}
