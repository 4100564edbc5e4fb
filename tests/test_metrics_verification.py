"""gluonfr.metrics.verification against hand-computed cases, scipy and a plain loop reference."""
from gluonfr.metrics import (
    equal_error_rate,
    pair_distances,
    roc_points,
    tar_at_far,
    threshold_at_far,
    verification,
)

import numpy as np
import pytest
from scipy.interpolate import BSpline
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import KFold
from sklearn.preprocessing import normalize

# --- the reference: insightface's algorithm written as a straightforward loop ---------------


def _loop_accuracy(threshold, dist, actual):
    pred = np.less(dist, threshold)
    tp = np.count_nonzero(pred & actual)
    fp = np.count_nonzero(pred & ~actual)
    tn = np.count_nonzero(~pred & ~actual)
    fn = np.count_nonzero(~pred & actual)
    tpr = 0 if tp + fn == 0 else float(tp) / float(tp + fn)
    fpr = 0 if fp + tn == 0 else float(fp) / float(fp + tn)
    return tpr, fpr, float(tp + tn) / dist.size


def _loop_val_far(threshold, dist, actual):
    pred = np.less(dist, threshold)
    n_same, n_diff = np.count_nonzero(actual), np.count_nonzero(~actual)
    val = float(np.count_nonzero(pred & actual)) / n_same if n_same else 0.0
    far = float(np.count_nonzero(pred & ~actual)) / n_diff if n_diff else 0.0
    return val, far


def old_scipy_slinear(x, y, x_new):
    """What scipy 1.6-1.8 ``interp1d(x, y, kind='slinear')(x_new)`` computed: a stable sort,
    then ``make_interp_spline(k=1)``'s B-spline (knots [x0, x, x_last], coefficients y) with
    no duplicate check, evaluated by scipy's own B-spline code."""
    order = np.argsort(x, kind="mergesort")
    x, y = np.asarray(x, float)[order], np.asarray(y, float)[order]
    return float(BSpline.construct_fast(np.r_[x[0], x, x[-1]], y, 1)(x_new))


def loop_reference(embeddings, issame, nfolds=10, far_target=1e-3):
    emb = normalize(np.asarray(embeddings))
    dist = np.sum(np.square(emb[0::2] - emb[1::2]), 1)
    issame = np.asarray(issame, dtype=bool)
    index = np.arange(len(dist))
    splits = (list(KFold(nfolds, shuffle=False).split(index)) if nfolds > 1
              else [(index, index)])
    thresholds = np.arange(0, 4, 0.01)
    accuracy, best, tprs, fprs = [], [], [], []
    for train, test in splits:
        acc_train = [_loop_accuracy(t, dist[train], issame[train])[2] for t in thresholds]
        b = int(np.argmax(acc_train))
        best.append(thresholds[b])
        rows = [_loop_accuracy(t, dist[test], issame[test]) for t in thresholds]
        tprs.append([r[0] for r in rows])
        fprs.append([r[1] for r in rows])
        accuracy.append(_loop_accuracy(thresholds[b], dist[test], issame[test])[2])
    thresholds = np.arange(0, 4, 0.001)
    val, far, val_thr = [], [], []
    for train, test in splits:
        far_train = np.array([_loop_val_far(t, dist[train], issame[train])[1]
                              for t in thresholds])
        thr = (old_scipy_slinear(far_train, thresholds, far_target)
               if far_train.max() >= far_target else 0.0)
        val_thr.append(thr)
        v, f = _loop_val_far(np.asarray(thr), dist[test], issame[test])
        val.append(v)
        far.append(f)
    return {"accuracy": np.mean(accuracy), "accuracy_std": np.std(accuracy),
            "threshold": np.mean(best), "fold_accuracy": np.array(accuracy),
            "tpr": np.mean(tprs, 0), "fpr": np.mean(fprs, 0), "val": np.mean(val),
            "val_std": np.std(val), "far": np.mean(far), "val_threshold": np.array(val_thr)}


def make_pairs(num_pairs, dim, noise, seed, dtype=np.float32):
    """Embeddings with signal: a same pair shares an identity vector, plus noise."""
    rng = np.random.default_rng(seed)
    issame = rng.random(num_pairs) < 0.5
    ident = rng.normal(size=(num_pairs, dim))
    a = ident + noise * rng.normal(size=(num_pairs, dim))
    other = np.where(issame[:, None], ident, rng.normal(size=(num_pairs, dim)))
    b = other + noise * rng.normal(size=(num_pairs, dim))
    emb = np.empty((2 * num_pairs, dim))
    emb[0::2], emb[1::2] = a, b
    return emb.astype(dtype), issame


# --- hand-made cases -------------------------------------------------------------------------


@pytest.mark.compat
def test_perfectly_separable_pairs_score_one():
    rng = np.random.default_rng(0)
    num = 200
    issame = np.arange(num) % 2 == 0
    a = rng.normal(size=(num, 64))
    b = np.where(issame[:, None], a + 0.05 * rng.normal(size=a.shape), rng.normal(size=a.shape))
    emb = np.empty((2 * num, 64))
    emb[0::2], emb[1::2] = a, b
    dist = pair_distances(emb)
    assert dist[issame].max() < 0.01 < dist[~issame].min()
    res = verification(emb, issame)
    assert res["accuracy"] == 1.0 and res["accuracy_std"] == 0.0
    assert res["auc"] == 1.0 and res["eer"] == 0.0
    assert res["val"] == 1.0 and res["far"] <= 0.02
    # Every threshold in the gap is perfect; the smallest grid value above 0 is taken.
    np.testing.assert_array_equal(res["fold_threshold"], np.arange(0, 4, 0.01)[1])


@pytest.mark.compat
def test_identical_embeddings_score_one_half():
    emb = np.ones((2 * 100, 8))
    issame = np.arange(100) % 2 == 0  # 5 same + 5 different pairs in every fold
    res = verification(emb, issame)
    # No threshold helps; ties go to the smallest (0: nothing accepted), right on half the pairs.
    assert res["accuracy"] == 0.5 and res["accuracy_std"] == 0.0
    assert res["threshold"] == 0.0
    assert res["auc"] == 0.5 and res["eer"] == 0.5


def test_distance_is_squared_l2_of_normalised_rows():
    emb = np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0], [-5.0, 0.0]])
    # (0.6, 0.8) vs (0, 1): 0.36 + 0.04; (1, 0) vs (-1, 0): 4.
    np.testing.assert_allclose(pair_distances(emb), [0.4, 4.0])
    assert pair_distances(emb.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("dim", [512, 37])
def test_distances_bit_identical_to_insightface_across_blocks(dim):
    # 1,000 pairs span several distance blocks (and threads) at 512-d: every bit must still be
    # that of insightface's whole-array sklearn normalize, subtract, square, sum.
    emb, _ = make_pairs(1000, dim, 0.7, seed=8)
    unit = normalize(emb)
    expected = np.sum(np.square(unit[0::2] - unit[1::2]), 1)
    np.testing.assert_array_equal(pair_distances(emb), expected)


def test_threshold_uses_strict_less_and_smallest_tie():
    # Same pairs orthogonal (distance exactly 2.0, a grid value), different pairs opposite
    # (4.0): "same" needs dist < thr strictly, so 2.0 itself fails and 2.01, the smallest of
    # the perfect thresholds, is chosen.
    same = [[1.0, 0.0], [0.0, 1.0]]
    diff = [[1.0, 0.0], [-1.0, 0.0]]
    emb = np.array((same + diff) * 50, dtype=np.float32)
    issame = np.tile([True, False], 50)
    np.testing.assert_array_equal(pair_distances(emb), np.tile([2.0, 4.0], 50))
    grid = np.arange(0, 4, 0.01)
    assert grid[200] == 2.0
    res = verification(emb, issame)
    assert res["accuracy"] == 1.0
    np.testing.assert_array_equal(res["fold_threshold"], grid[201])


# --- the vectorised protocol equals the loop -------------------------------------------------


@pytest.mark.parametrize("num_pairs,dim,noise,nfolds,dtype,seed", [
    (300, 16, 0.9, 10, np.float32, 1),   # float32, like network output
    (257, 8, 1.3, 10, np.float64, 2),    # weak signal, unequal folds
    (120, 4, 0.7, 1, np.float32, 3),     # insightface's LFold(1): train == test
])
def test_vectorised_equals_loop_reference(num_pairs, dim, noise, nfolds, dtype, seed):
    emb, issame = make_pairs(num_pairs, dim, noise, seed, dtype)
    res = verification(emb, issame, nfolds=nfolds)
    ref = loop_reference(emb, issame, nfolds=nfolds)
    for key in ("accuracy", "accuracy_std", "threshold", "val", "val_std", "far"):
        assert res[key] == ref[key], key
    for key in ("fold_accuracy", "tpr", "fpr", "val_threshold"):
        np.testing.assert_array_equal(res[key], ref[key], err_msg=key)
    assert 0.5 < res["accuracy"] < 1.0  # the cases have signal but are not trivial


def test_val_at_far_when_the_target_far_is_hit_exactly():
    # 1,000 different pairs and one fold (train == test): FAR takes the value 1/1000 == 1e-3
    # on a run of thresholds, where the rule must take the run's last threshold, as old
    # scipy did.
    emb, _ = make_pairs(2000, 16, 0.8, seed=4)
    issame = np.arange(2000) % 2 == 0
    res = verification(emb, issame, nfolds=1)
    ref = loop_reference(emb, issame, nfolds=1)
    dist = pair_distances(emb)
    grid = np.arange(0, 4, 0.001)
    far = np.array([np.count_nonzero(dist[~issame] < np.float32(t)) for t in grid]) / 1000
    assert np.count_nonzero(far == 1e-3) >= 2
    assert res["val_threshold"][0] == ref["val_threshold"][0] == grid[far == 1e-3][-1]
    assert res["val"] == ref["val"] and res["far"] == ref["far"]


def test_metrics_from_the_exact_roc():
    emb, issame = make_pairs(400, 8, 1.1, seed=5)
    res = verification(emb, issame)
    dist = pair_distances(emb)
    assert res["auc"] == pytest.approx(roc_auc_score(issame, -dist), abs=1e-12)
    # EER: where FAR (different pairs accepted) equals FRR (same pairs rejected), between the
    # two distances that bracket it; checked by brute force over all cut points.
    cuts = np.sort(dist)
    far = [(dist[~issame] <= c).mean() for c in cuts]
    frr = [(dist[issame] > c).mean() for c in cuts]
    gap = np.abs(np.subtract(far, frr))
    k = int(np.argmin(gap))
    assert min(far[k], frr[k]) - 1e-9 <= res["eer"] <= max(far[k], frr[k]) + 1e-9


@pytest.mark.parametrize("num,levels,seed", [(500, 0, 9), (500, 7, 10), (3, 0, 11), (2, 2, 12)])
def test_roc_points_equal_sklearn_roc_curve(num, levels, seed):
    # levels > 0 rounds the scores onto a few values: long runs of ties, dropped points
    rng = np.random.default_rng(seed)
    issame = rng.random(num) < 0.4
    issame[:2] = True, False
    scores = rng.normal(size=num) + issame
    if levels:
        scores = np.round(scores * levels / 4) / levels
    for got, want in zip(roc_points(issame, scores), roc_curve(issame, scores)):
        np.testing.assert_array_equal(got, want)


def test_equal_error_rate_interpolates_between_roc_points():
    # ROC (0,0) (0.2,0.6) (0.6,0.9) (1,1): FRR-FAR goes 0.2 -> -0.5 between points 1 and 2.
    eer = equal_error_rate([0, 0.2, 0.6, 1], [0, 0.6, 0.9, 1])
    # On that segment FAR = 0.2 + 0.4a, FRR = 0.4 - 0.3a: equal at a = 2/7.
    assert eer == pytest.approx(0.2 + 0.4 * 2 / 7)


# --- the VAL@FAR interpolation rule ----------------------------------------------------------


@pytest.mark.parametrize("far,target,expected", [
    ([0, 0, 0.5, 1], 0.25, 1.5),          # between runs: linear between the run ends
    ([0, 0.5, 0.5, 0.5, 1], 0.5, 3.0),    # on a run: its LAST threshold (not the first, 1)
    ([0, 0, 0, 1], 0.0, 2.0),             # the leading run of zeros: its last threshold
    ([0, 0.5, 1], 1.0, 2.0),              # at the maximum: the last threshold
    ([0, 0.2, 1, 1], 1.0, 0.0),           # maximum on a run: de Boor's zero-length segment
    ([0, 0.0001, 0.0002], 1e-3, 0.0),     # never reached: insightface's fallback 0
])
def test_threshold_at_far_hand_cases(far, target, expected):
    thresholds = np.arange(len(far), dtype=float)
    assert threshold_at_far(far, thresholds, target) == expected
    if max(far) >= target:
        assert old_scipy_slinear(far, thresholds, target) == expected


def test_threshold_at_far_bit_identical_to_scipy_bspline():
    rng = np.random.default_rng(6)
    thresholds = np.arange(0, 4, 0.001)
    for _ in range(20):
        n_diff = int(rng.integers(50, 3000))
        d = np.clip(rng.normal(rng.uniform(1.2, 2.0), 0.3, n_diff), 0, 4)
        far = np.searchsorted(np.sort(d), thresholds, side="left") / n_diff
        for target in (1e-3, 1e-2, 1.0 / n_diff, 0.1):
            assert threshold_at_far(far, thresholds, target) == \
                old_scipy_slinear(far, thresholds, target)


def test_threshold_at_far_rejects_bad_curves():
    with pytest.raises(ValueError, match="non-decreasing"):
        threshold_at_far([0, 0.5, 0.2], [0, 1, 2], 0.1)
    with pytest.raises(ValueError, match="below the first"):
        threshold_at_far([0.2, 0.5, 1], [0, 1, 2], 0.1)


# --- TAR@FAR ---------------------------------------------------------------------------------


def test_tar_at_far_closest_point_highest_tar():
    # 10 different pairs (FAR in steps of 0.1) and 4 same pairs; scores are similarities.
    diff = np.arange(10) / 10.0             # 0.0 .. 0.9
    same = np.array([0.95, 0.85, 0.55, 0.05])
    scores = np.r_[same, diff]
    issame = np.r_[np.ones(4, bool), np.zeros(10, bool)]
    tars, thr = tar_at_far(issame, scores, fars=(0.1, 0.35, 1e-6), return_thresholds=True)
    # FAR 0.1 is reached at threshold 0.9 (TAR 1/4) and still at 0.85 (TAR 2/4): highest wins.
    assert tars[0.1] == 0.5 and thr[0.1] == 0.85
    # FAR 0.35: the closest ROC corner is FAR 0.4, where TAR rises from 2/4 to 3/4 at 0.55.
    assert tars[0.35] == 0.75 and thr[0.35] == 0.55
    # Below 1/10 nothing is measurable: the TAR at FAR 0 (0.95 beats every different pair).
    assert tars[1e-6] == 0.25


def test_verification_reports_tar_at_far_and_curves():
    emb, issame = make_pairs(300, 16, 0.9, seed=7)
    res = verification(emb, issame)
    assert res["tpr"].shape == res["fpr"].shape == (400,)
    assert set(res["tar_at_far"]) == {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1}
    assert res["tar_at_far"] == tar_at_far(issame, -pair_distances(emb).astype(np.float64))


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("emb,issame,nfolds,match", [
    (np.zeros((5, 4)), np.ones(2, bool), 10, r"\(2P, D\)"),
    (np.zeros((20, 4)), np.ones(9, bool), 2, "10 pairs but issame has 9"),
    (np.zeros((8, 4)), np.ones(4, bool), 10, "cannot be split"),
    (np.full((20, 4), np.nan), np.ones(10, bool), 2, "NaN"),
    (np.zeros((20, 4)), np.ones(10, bool), 0, "nfolds"),
    (np.zeros((20, 4)), np.full(10, 2), 2, "bools"),
])
def test_bad_input_is_named(emb, issame, nfolds, match):
    with pytest.raises(ValueError, match=match):
        verification(emb, issame, nfolds=nfolds)
