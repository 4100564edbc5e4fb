"""FaceVerification (EvalMetric) and evaluate_targets: per-target state, order invariance."""
from gluonfr.metrics import (
    FaceVerification,
    evaluate_targets,
    extract_embeddings,
    verification,
)

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn

SCALARS = ("accuracy", "accuracy_std", "threshold", "val", "val_std", "far", "auc", "eer")


def random_pairs(num_pairs, dim, seed):
    rng = np.random.default_rng(seed)
    issame = rng.random(num_pairs) < 0.5
    a = rng.normal(size=(num_pairs, dim))
    b = np.where(issame[:, None], a, rng.normal(size=(num_pairs, dim)))
    b = b + 0.8 * rng.normal(size=(num_pairs, dim))
    return issame, a.astype(np.float32), b.astype(np.float32)


def interleave(a, b):
    emb = np.empty((2 * len(a), a.shape[1]), dtype=a.dtype)
    emb[0::2], emb[1::2] = a, b
    return emb


def assert_same_result(res, ref):
    for key in SCALARS:
        assert res[key] == ref[key], key
    for key in ("fold_accuracy", "tpr", "fpr", "val_threshold"):
        np.testing.assert_array_equal(res[key], ref[key], err_msg=key)


@pytest.mark.compat
def test_metric_over_batches_equals_one_call():
    issame, a, b = random_pairs(120, 8, seed=0)
    metric = FaceVerification(nfolds=10, flip=False)
    assert np.isnan(metric.get()[1])
    for sl in (slice(0, 50), slice(50, 51), slice(51, 120)):  # NDArray and numpy batches
        metric.update(mx.nd.array(issame[sl]), mx.nd.array(a[sl]), b[sl])
    name, acc = metric.get()
    ref = verification(interleave(a, b), issame)
    assert name == "verification" and acc == ref["accuracy"]
    assert_same_result(metric.result(), ref)
    assert metric.num_inst == 120


@pytest.mark.parametrize("mode", ["sum", "concat"])
def test_metric_fuses_flipped_embeddings(mode):
    issame, a, b = random_pairs(60, 6, seed=1)
    _, fa, fb = random_pairs(60, 6, seed=2)
    metric = FaceVerification(nfolds=5, flip=True, mode=mode)
    metric.update(issame, a, b, fa, fb)
    fuse = (lambda x, y: x + y) if mode == "sum" else (lambda x, y: np.hstack([x, y]))
    ref = verification(interleave(fuse(a, fa), fuse(b, fb)), issame, nfolds=5)
    assert metric.get() == ("verification-flip", ref["accuracy"])
    assert_same_result(metric.result(), ref)
    # EvalMetric style: update([labels], [preds...]) gives the same.
    other = FaceVerification(nfolds=5, flip=True, mode=mode)
    other.update([mx.nd.array(issame)], [a, b, fa, fb])
    assert_same_result(other.result(), ref)


def test_reset_starts_a_new_target():
    targets = [random_pairs(100, 8, seed=s) for s in (3, 4)]
    metric = FaceVerification(nfolds=10)
    got = []
    for issame, a, b in targets:
        metric.reset()
        metric.update(issame, a, b)
        got.append(metric.result())
    for res, (issame, a, b) in zip(got, targets):
        assert_same_result(res, verification(interleave(a, b), issame))
    # Without the reset the second target would be pooled with the first (gluon-face's bug).
    pooled = FaceVerification(nfolds=10)
    for issame, a, b in targets:
        pooled.update(issame, a, b)
    assert pooled.num_inst == 200 and pooled.get()[1] != got[1]["accuracy"]


def test_metric_rejects_bad_updates():
    issame, a, b = random_pairs(20, 4, seed=5)
    with pytest.raises(ValueError, match="flip=True"):
        FaceVerification(flip=False).update(issame, a, b, a, b)
    with pytest.raises(ValueError, match="both flip_a and flip_b"):
        FaceVerification().update(issame, a, b, a)
    with pytest.raises(ValueError, match="len\\(issame\\)"):
        FaceVerification().update(issame[:5], a, b)
    metric = FaceVerification()
    metric.update(issame, a, b)
    with pytest.raises(ValueError, match="reset\\(\\)"):
        metric.update(issame, np.zeros((20, 3)), np.zeros((20, 3)))
    assert mx.metric.create("faceverification", nfolds=3).nfolds == 3


# --- evaluate_targets ------------------------------------------------------------------------


def face_target(num_pairs, seed):
    """Pairs of tiny images: a same pair is one image plus a little noise."""
    rng = np.random.default_rng(seed)
    issame = np.arange(num_pairs) % 2 == 0
    a = rng.integers(0, 256, size=(num_pairs, 6, 4, 3))
    b = np.where(issame[:, None, None, None], a, rng.integers(0, 256, size=a.shape))
    b = np.clip(b + rng.normal(0, 40, size=a.shape), 0, 255)
    images = np.empty((2 * num_pairs, 6, 4, 3), dtype=np.uint8)
    images[0::2], images[1::2] = a, b
    return mx.nd.array(images, dtype="uint8"), issame


def test_evaluate_targets_is_order_invariant_and_per_target():
    net = nn.HybridSequential()
    net.add(nn.Flatten(), nn.Dense(6, in_units=72))
    net.initialize(mx.init.Uniform(0.01))
    targets = {"lfw": face_target(40, seed=6), "agedb_30": face_target(60, seed=7)}
    forward = evaluate_targets(net, targets, batch_size=16, nfolds=10, progress=False)
    backward = evaluate_targets(net, dict(reversed(list(targets.items()))), batch_size=16,
                                nfolds=10, progress=False)
    assert list(forward) == ["lfw", "agedb_30"] and list(backward) == ["agedb_30", "lfw"]
    for name, (images, issame) in targets.items():
        assert_same_result(forward[name], backward[name])
        assert_same_result(forward[name]["noflip"], backward[name]["noflip"])
        # Each equals the target evaluated alone: nothing carries over between targets.
        alone_flip = verification(extract_embeddings(net, images, progress=False), issame)
        alone_plain = verification(extract_embeddings(net, images, flip=False,
                                                      progress=False), issame)
        assert_same_result(forward[name], alone_flip)
        assert_same_result(forward[name]["noflip"], alone_plain)
        assert forward[name]["flip"] is True and forward[name]["flip_mode"] == "sum"
        # XNorm: the mean norm of every raw embedding, original and mirrored.
        orig = extract_embeddings(net, images, flip=False, progress=False)
        mirror = extract_embeddings(net, images.asnumpy()[:, :, ::-1], flip=False,
                                    progress=False)
        norms = np.linalg.norm(np.vstack([orig, mirror]).astype(np.float64), axis=1)
        assert forward[name]["xnorm"] == pytest.approx(norms.mean(), rel=1e-6)
    plain = evaluate_targets(net, targets, flip=False, progress=False)
    assert "noflip" not in plain["lfw"] and plain["lfw"]["flip"] is False
    assert_same_result(plain["lfw"], forward["lfw"]["noflip"])


def test_evaluate_targets_names_a_bad_target():
    net = nn.Dense(2, in_units=72)
    net.initialize()
    images, issame = face_target(10, seed=8)
    with pytest.raises(ValueError, match="'cfp_fp'.*two images per pair"):
        evaluate_targets(net, {"cfp_fp": (images, issame[:4])}, progress=False)
