"""Margin losses and L2-softmax against independent float64 numpy formulas.

The reference computes every target angle with ``arccos`` (the library uses the addition
formula / a half-angle arctan), the loss with scipy's ``logsumexp`` (the library uses
``log_softmax`` with a temperature and an ``index_copy`` of the target column).
"""
import math

from gluonfr.loss import (
    ArcFaceLoss,
    CombinedMarginLoss,
    CosFaceLoss,
    L2SoftmaxLoss,
    SoftmaxCrossEntropyLoss,
    check_labels,
)
from gluonfr.nn import NormDense

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon
from scipy.special import logsumexp

M = 0.5
TH = math.cos(math.pi - M)  # insightface's threshold for m = 0.5: -0.8776


# ----------------------------------------------------------------------------- numpy reference
def ref_arcface(c, m=M, easy_margin=False):
    phi = np.cos(np.arccos(c) + m)
    if easy_margin:
        return np.where(c > 0, phi, c)
    return np.where(c > np.cos(np.pi - m), phi, c - np.sin(np.pi - m) * m)


def ref_combined(c, m1, m2, m3):
    return np.cos(m1 * np.arccos(c) + m2) - m3


def ref_loss(cos, label, target, s):
    """Per-sample CE of s*cos with the target column replaced by s*target(cos_y)."""
    rows = np.arange(len(label))
    logits = s * cos.astype(np.float64)
    logits[rows, label] = s * target(cos[rows, label].astype(np.float64))
    return logsumexp(logits, axis=1) - logits[rows, label], logits


CASES = {
    "arcface": (lambda **kw: ArcFaceLoss(**kw), ref_arcface, 64.0),
    "arcface_easy": (lambda **kw: ArcFaceLoss(s=32, m=0.3, easy_margin=True, **kw),
                     lambda c: ref_arcface(c, 0.3, True), 32.0),
    "cosface": (lambda **kw: CosFaceLoss(**kw), lambda c: c - 0.35, 64.0),
    "combined": (lambda **kw: CombinedMarginLoss(m1=1.0, m2=0.3, m3=0.2, **kw),
                 lambda c: ref_combined(c, 1.0, 0.3, 0.2), 64.0),
    "sphere_like": (lambda **kw: CombinedMarginLoss(s=30, m1=1.5, m2=0.1, m3=0.05, **kw),
                    lambda c: ref_combined(c, 1.5, 0.1, 0.05), 30.0),
    "normface": (lambda **kw: CombinedMarginLoss(m1=1, m2=0, m3=0, **kw), lambda c: c, 64.0),
}

# target cosines: theta ~ 0, mid-range, cos=0 (easy-margin switch), around and beyond pi - m
EDGE_TARGETS = np.array([math.cos(1e-4), math.cos(1e-2), 0.9, 0.5, 1e-3, -1e-3, -0.3,
                         TH + 1e-4, TH - 1e-4, math.cos(3.0), -0.999])
EXACT_UNIT = np.array([1.0, -1.0])


def make_batch(targets, classes=7, seed=0):
    rng = np.random.RandomState(seed)
    cos = rng.uniform(-1, 1, size=(len(targets), classes))
    label = rng.randint(0, classes, size=len(targets))
    cos[np.arange(len(targets)), label] = targets
    return cos, label


def run(loss, cos, label, dtype="float32", out_grad=None, *extra):
    x = mx.nd.array(cos, dtype=dtype)
    x.attach_grad()
    with autograd.record():
        out = loss(x, mx.nd.array(label), *extra)
        value = out[0] if isinstance(out, tuple) else out
    value.backward(None if out_grad is None else mx.nd.array(out_grad, dtype=value.dtype))
    return out, x.grad


# ----------------------------------------------------------------------------- forward values
@pytest.mark.compat
@pytest.mark.parametrize("hybridize", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_matches_numpy_float64(name, hybridize):
    make, target, s = CASES[name]
    loss = make()
    if hybridize:
        loss.hybridize()
    cos, label = make_batch(np.concatenate([EDGE_TARGETS, EXACT_UNIT]), seed=1)
    got = run(loss, cos, label, "float64")[0].asnumpy()
    want = ref_loss(cos, label, target, s)[0]
    inner = slice(0, len(EDGE_TARGETS))
    np.testing.assert_allclose(got[inner], want[inner], rtol=1e-10, atol=1e-9)
    # cos = +-1 exactly: the radicands are floored at 1e-12, so sin(theta) (or theta) is off by
    # ~1e-6 and the target cosine by at most m1 * 1.5e-6
    np.testing.assert_allclose(got[inner.stop:], want[inner.stop:], rtol=0, atol=s * 3e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_float32_and_returned_logits(name):
    make, target, s = CASES[name]
    cos, label = make_batch(EDGE_TARGETS, seed=2)
    cos32 = cos.astype(np.float32)
    want, want_logits = ref_loss(cos32, label, target, s)
    got = run(make(), cos32, label)[0]
    assert got.dtype == np.float32 and got.shape == (len(label),)
    np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-5, atol=2e-4)
    loss, logits = run(make(return_logits=True), cos32, label)[0]
    np.testing.assert_array_equal(loss.asnumpy(), got.asnumpy())
    np.testing.assert_allclose(logits.asnumpy(), want_logits, rtol=1e-5, atol=2e-4)


@pytest.mark.parametrize("hybridize", [False, True])
def test_return_logits_are_the_adjusted_scaled_logits_and_detached(hybridize):
    cos, label = make_batch(EDGE_TARGETS, seed=3)
    plain, with_logits = ArcFaceLoss(), ArcFaceLoss(return_logits=True)
    if hybridize:
        plain.hybridize()
        with_logits.hybridize()
    (loss, logits), grad = run(with_logits, cos, label)
    loss_plain, grad_plain = run(plain, cos, label)
    want_loss, want_logits = ref_loss(cos.astype(np.float32), label, ref_arcface, 64.0)
    np.testing.assert_allclose(logits.asnumpy(), want_logits, rtol=1e-5, atol=2e-4)
    np.testing.assert_allclose(loss.asnumpy(), want_loss, rtol=1e-5, atol=2e-4)
    # the logits output adds nothing to the gradient ...
    np.testing.assert_array_equal(grad.asnumpy(), grad_plain.asnumpy())
    np.testing.assert_array_equal(loss.asnumpy(), loss_plain.asnumpy())
    # ... and nothing flows back through it: imperatively it has no history at all, hybridized
    # its gradient is zero
    x = mx.nd.array(cos)
    x.attach_grad()
    with autograd.record():
        _, logits = with_logits(x, mx.nd.array(label))
    if hybridize:
        logits.backward()
        assert not x.grad.asnumpy().any()
    else:
        with pytest.raises(mx.MXNetError, match="not in a computational graph"):
            logits.backward()


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("fast_backward", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_finite_differences_float64(name, fast_backward):
    make, target, s = CASES[name]
    # away from the branch switches and from |cos| = 1 (where the clip makes it one-sided)
    targets = np.array([0.999, 0.9, 0.5, 0.2, -0.3, TH + 0.01, TH - 0.01, -0.95])
    cos, label = make_batch(targets, classes=5, seed=4)
    head = np.random.RandomState(5).uniform(0.2, 1.5, size=len(label))  # a weighted sum
    loss = make(fast_backward=fast_backward)
    loss.hybridize()
    value, grad = run(loss, cos, label, "float64", out_grad=head)
    np.testing.assert_allclose(value.asnumpy(), ref_loss(cos, label, target, s)[0], rtol=1e-10)
    num = np.zeros_like(cos)
    h = 1e-6
    for idx in np.ndindex(*cos.shape):
        up, down = cos.copy(), cos.copy()
        up[idx] += h
        down[idx] -= h
        diff = ref_loss(up, label, target, s)[0] - ref_loss(down, label, target, s)[0]
        num[idx] = (head * diff).sum() / (2 * h)
    np.testing.assert_allclose(grad.asnumpy(), num, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_no_nan_or_inf_at_unit_cosines(name, dtype):
    make = CASES[name][0]
    cos, label = make_batch(np.array([1.0, -1.0, 1.0, -1.0]), seed=6)
    cos[0] = 1.0  # a whole row of +1, too
    loss = make(fast_backward=dtype == "float16")
    loss.hybridize()
    out, grad = run(loss, cos, label, dtype)
    assert out.dtype == np.float32 and grad.dtype == np.dtype(dtype)
    assert np.isfinite(out.asnumpy()).all() and np.isfinite(grad.asnumpy()).all()


def test_float16_input_is_computed_in_float32():
    # 70,000 classes with all cosines 0: a float16 softmax sum would overflow (max 65504)
    classes = 70000
    cos = np.zeros((2, classes), dtype=np.float16)
    label = np.array([5, 69999])
    for loss, t in ((CombinedMarginLoss(m1=1, m2=0, m3=0), 0.0),
                    (ArcFaceLoss(), -math.sin(M)), (CosFaceLoss(), -0.35)):
        loss.hybridize()
        out, grad = run(loss, cos, label, "float16")
        assert out.dtype == np.float32
        want = np.log(classes - 1 + np.exp(64 * t)) - 64 * t
        np.testing.assert_allclose(out.asnumpy(), want, rtol=1e-5)
        assert np.isfinite(grad.asnumpy().astype(np.float32)).all()
    # and a random float16 batch agrees with float64 on the same (rounded) cosines
    cos, label = make_batch(EDGE_TARGETS, seed=7)
    cos16 = cos.astype(np.float16)
    out = run(ArcFaceLoss(), cos16, label, "float16")[0].asnumpy()
    np.testing.assert_allclose(out, ref_loss(cos16, label, ref_arcface, 64.0)[0], atol=5e-4)


# ----------------------------------------------------------------------------- equivalences
def test_combined_margin_equivalences():
    cos, label = make_batch(np.concatenate([EDGE_TARGETS, EXACT_UNIT]), seed=8)
    for m in (0.2, 0.35):
        np.testing.assert_array_equal(run(CombinedMarginLoss(m1=1, m2=0, m3=m), cos, label)[0]
                                      .asnumpy(), run(CosFaceLoss(m=m), cos, label)[0].asnumpy())
    # ArcFace equals the combined margin wherever insightface's branch is not taken ...
    combined = run(CombinedMarginLoss(m1=1, m2=M, m3=0), cos, label)[0].asnumpy()
    arc = run(ArcFaceLoss(m=M), cos, label)[0].asnumpy()
    taken = cos[np.arange(len(label)), label] <= TH
    assert 0 < taken.sum() < len(label)
    np.testing.assert_array_equal(combined[~taken], arc[~taken])
    # ... and beyond pi - m ArcFace's fallback target cos - m sin(m) is below cos(theta + m)
    assert (arc[taken] > combined[taken]).all()
    want = ref_loss(cos, label, lambda c: ref_combined(c, 1, M, 0), 64.0)[0]
    np.testing.assert_allclose(combined[taken], want[taken], rtol=1e-5, atol=2e-4)
    # the margin-free case is plain softmax CE of s*cos (gluon's own loss as the reference)
    normface = run(CombinedMarginLoss(s=64, m1=1, m2=0, m3=0), cos, label)[0].asnumpy()
    gluon_ce = SoftmaxCrossEntropyLoss()(mx.nd.array(64 * cos), mx.nd.array(label)).asnumpy()
    np.testing.assert_allclose(normface, gluon_ce, rtol=1e-5, atol=1e-4)


def test_sample_weight_and_global_weight():
    cos, label = make_batch(EDGE_TARGETS, seed=9)
    sw = np.random.RandomState(0).uniform(0, 2, size=len(label)).astype(np.float32)
    base = run(CosFaceLoss(), cos, label)[0].asnumpy()
    loss = CosFaceLoss(weight=0.5)
    loss.hybridize()
    got = run(loss, cos, label, "float32", None, mx.nd.array(sw))[0].asnumpy()
    np.testing.assert_allclose(got, 0.5 * sw * base, rtol=1e-6)


# ----------------------------------------------------------------------------- labels
def test_check_labels_errors():
    np.testing.assert_array_equal(check_labels(mx.nd.array([[3], [0]]), 4), [3, 0])
    assert check_labels(mx.nd.array([2, 1], dtype="int32"), 3).dtype == np.int64
    with pytest.raises(ValueError, match=r"1 of 2 .*\[0, 4\): \[1\]=4.0"):
        check_labels(mx.nd.array([3, 4]), 4)
    for bad in ([-1], [1.5], [float("nan")]):
        with pytest.raises(ValueError, match="not integer class ids"):
            check_labels(np.array(bad, dtype=np.float32), 4)
    with pytest.raises(TypeError, match="float16"):
        check_labels(mx.nd.array([1, 2], dtype="float16"), 4)
    with pytest.raises(ValueError, match="shape"):
        check_labels(np.zeros((2, 2)), 4)


@pytest.mark.parametrize("hybridize", [False, True])
def test_out_of_range_label_raises(hybridize):
    cos, _ = make_batch(EDGE_TARGETS[:3], seed=10)
    loss = ArcFaceLoss()
    if hybridize:
        loss.hybridize()
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        loss(mx.nd.array(cos), mx.nd.array([0, 7, 1]))


def test_unchecked_bad_label_gives_nan_loss_and_zero_gradient():
    cos, _ = make_batch(EDGE_TARGETS[:4], seed=11)
    good = np.array([0, 3, 2, 6])
    for loss, bad in ((ArcFaceLoss(check_label=False), 7), (ArcFaceLoss(check_label=False), -1),
                      (ArcFaceLoss(check_label=False, fast_backward=True), 1e6)):
        loss.hybridize()
        label = good.astype(np.float64)
        label[1] = bad
        out, grad = run(loss, cos, label)
        out, grad = out.asnumpy(), grad.asnumpy()
        assert np.isnan(out[1]) and np.isfinite(np.delete(out, 1)).all()
        want = ref_loss(cos.astype(np.float32), good, ref_arcface, 64.0)[0]
        np.testing.assert_allclose(np.delete(out, 1), np.delete(want, 1), rtol=1e-5, atol=2e-4)
        assert np.isfinite(grad).all() and not grad[1].any()


def test_large_class_ids_stay_exact_as_int32_or_float32():
    # ids > 2048 are where float16 labels go wrong; > 2**24 / C rows checks the int64 flat index
    classes = 5000
    rng = np.random.RandomState(12)
    cos = rng.uniform(-1, 1, size=(3, classes))
    label = np.array([4097, 2049, 4999])
    want = ref_loss(cos.astype(np.float32), label, ref_arcface, 64.0)[0]
    for dtype in ("int32", "float32"):
        x = mx.nd.array(cos)
        out = ArcFaceLoss()(x, mx.nd.array(label, dtype=dtype)).asnumpy()
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=2e-4)


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="s must be > 0"):
        ArcFaceLoss(s=0)
    with pytest.raises(ValueError, match=r"\[0, pi/2\)"):
        ArcFaceLoss(m=2.0)
    with pytest.raises(ValueError, match="m1"):
        CombinedMarginLoss(m1=0)
    with pytest.raises(ValueError, match="finite"):
        CosFaceLoss(m=float("nan"))


# ----------------------------------------------------------------------------- L2-softmax
def ref_l2softmax(x, w, b, alpha, label):
    feat = alpha * x / np.linalg.norm(x, axis=1, keepdims=True)
    logits = feat @ w.T + (0 if b is None else b)
    return logsumexp(logits, axis=1) - logits[np.arange(len(label)), label]


def test_l2softmax_alpha_lower_bound():
    # log(p (C-2) / (1-p)) by hand: C=10, p=0.9 -> log(72); C=85742, p=0.99 -> log(8488260)
    assert math.isclose(L2SoftmaxLoss.alpha_lower_bound(10), math.log(72))
    assert math.isclose(L2SoftmaxLoss.alpha_lower_bound(85742, 0.99), math.log(8488260))
    with pytest.raises(ValueError):
        L2SoftmaxLoss.alpha_lower_bound(2)
    with pytest.warns(UserWarning, match="lower bound"):
        L2SoftmaxLoss(10, 4, alpha=4.0)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("hybridize", [False, True])
def test_l2softmax_forward_and_learned_alpha_gradient(use_bias, hybridize):
    rng = np.random.RandomState(13)
    x = rng.normal(size=(6, 4)) * 3
    label = rng.randint(0, 5, size=6)
    head = L2SoftmaxLoss(5, 4, alpha=6.0, learn_alpha=True, use_bias=use_bias,
                         return_logits=True, fast_backward=hybridize)
    head.initialize(mx.init.Normal(0.5))
    if hybridize:
        head.hybridize()
    if use_bias:
        head.bias.set_data(mx.nd.array(rng.normal(size=5)))
    w = head.weight.data().asnumpy().astype(np.float64)
    b = head.bias.data().asnumpy().astype(np.float64) if use_bias else None
    xnd = mx.nd.array(x)
    with autograd.record():
        loss, logits = head(xnd, mx.nd.array(label))
    loss.backward()
    np.testing.assert_allclose(loss.asnumpy(), ref_l2softmax(x, w, b, 6.0, label), rtol=1e-5,
                               atol=1e-5)
    assert logits.shape == (6, 5)
    h = 1e-5
    num = (ref_l2softmax(x, w, b, 6.0 + h, label).sum()
           - ref_l2softmax(x, w, b, 6.0 - h, label).sum()) / (2 * h)
    np.testing.assert_allclose(head.alpha.grad().asnumpy()[0], num, rtol=1e-4)


def test_l2softmax_fixed_alpha_is_not_trained():
    head = L2SoftmaxLoss(5, 4, alpha=8.0)
    head.initialize()
    trainer = gluon.Trainer(head.collect_params(), "sgd", {"learning_rate": 1.0})
    with autograd.record():
        loss = head(mx.nd.random.normal(shape=(4, 4)), mx.nd.array([0, 1, 2, 3]))
    loss.backward()
    trainer.step(4)
    assert head.alpha.grad_req == "null"
    assert head.alpha.data().asscalar() == 8.0
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        head(mx.nd.ones((2, 4)), mx.nd.array([0, 5]))


# ----------------------------------------------------------------------------- data parallel
def _heads(ctx, seed_weight):
    dense = NormDense(6, 4)
    dense.initialize(ctx=ctx)
    dense.weight.set_data(seed_weight)
    dense.hybridize()
    loss = ArcFaceLoss(s=16.0)
    loss.hybridize()
    return dense, loss


def test_context_list_data_parallel_matches_single_device():
    rng = np.random.RandomState(14)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    label = np.array([0, 1, 2, 3, 4, 5, 0, 1], dtype=np.float32)
    w0 = mx.nd.array(rng.normal(size=(6, 4)) * 0.1)
    ctxs = [mx.cpu(0), mx.cpu(1)]
    results = []
    for devices in (ctxs, [mx.cpu(0)]):
        dense, loss = _heads(devices, w0)
        trainer = gluon.Trainer(dense.collect_params(), "sgd", {"learning_rate": 0.5})
        xs = gluon.utils.split_and_load(mx.nd.array(x), devices)
        ys = gluon.utils.split_and_load(mx.nd.array(label), devices)
        with autograd.record():
            losses = [loss(dense(a), b) for a, b in zip(xs, ys)]
        for part in losses:
            part.backward()
        trainer.step(len(x))
        results.append(([w.asnumpy() for w in dense.weight.list_data()],
                        np.concatenate([part.asnumpy() for part in losses])))
    (multi_w, multi_loss), (single_w, single_loss) = results
    np.testing.assert_allclose(multi_loss, single_loss, rtol=1e-6)
    np.testing.assert_array_equal(multi_w[0], multi_w[1])
    np.testing.assert_allclose(multi_w[0], single_w[0], rtol=1e-5, atol=1e-7)
    assert not np.allclose(single_w[0], w0.asnumpy())  # the step did move the centres


def test_loss_inside_a_hybridized_parent_block():
    class Head(gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.dense = NormDense(5, 3)
                self.loss = CosFaceLoss(return_logits=True)

        def hybrid_forward(self, F, x, label):
            return self.loss(self.dense(x), label)

    net = Head()
    net.initialize()
    x, label = mx.nd.random.normal(shape=(4, 3)), mx.nd.array([0, 4, 2, 1])
    eager = net(x, label)
    net.hybridize()
    traced = net(x, label)
    for a, b in zip(eager, traced):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6)


# ----------------------------------------------------------------------------- behaviour
def _angular_gap(emb, label, classes):
    """Mean over samples of (angle to the nearest other class centroid - angle to its own)."""
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    centres = np.stack([unit[label == k].mean(0) for k in range(classes)])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    angles = np.arccos(np.clip(unit @ centres.T, -1, 1))
    rows = np.arange(len(label))
    own = angles[rows, label].copy()
    angles[rows, label] = np.inf
    return float(np.mean(angles.min(1) - own))


def _train(kind, x, label, classes, steps=300):
    mx.random.seed(0)
    body = gluon.nn.HybridSequential()
    body.add(gluon.nn.Dense(32, activation="relu", in_units=x.shape[1]),
             gluon.nn.Dense(8, in_units=32))
    if kind == "softmax":
        head, loss = gluon.nn.Dense(classes, in_units=8), SoftmaxCrossEntropyLoss()
    else:
        head = NormDense(classes, 8)
        loss = {"arcface": ArcFaceLoss(), "cosface": CosFaceLoss(),
                "normface": CombinedMarginLoss(m1=1, m2=0, m3=0)}[kind]
    body.initialize(mx.init.Xavier())
    head.initialize()
    for block in (body, head, loss):
        block.hybridize()
    params = list(body.collect_params().values()) + list(head.collect_params().values())
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": 0.1, "momentum": 0.9})
    xs, ys = mx.nd.array(x), mx.nd.array(label)
    for _ in range(steps):
        with autograd.record():
            value = loss(head(body(xs)), ys)
        value.backward()
        trainer.step(len(x))
    emb = body(xs).asnumpy()
    accuracy = float((head(body(xs)).asnumpy().argmax(1) == label).mean())
    return accuracy, _angular_gap(emb, label, classes)


def test_margins_train_and_widen_the_angular_gap():
    """ArcFace/CosFace (s=64 defaults) learn separable features and leave larger angular gaps
    between classes than plain softmax and than the margin-free NormFace."""
    classes, per_class = 10, 20
    rng = np.random.RandomState(2)
    means = rng.normal(size=(classes, 32))
    x = (np.repeat(means, per_class, 0) + 2.0 * rng.normal(size=(classes * per_class, 32)))
    label = np.repeat(np.arange(classes), per_class)
    result = {kind: _train(kind, x.astype(np.float32), label, classes)
              for kind in ("softmax", "normface", "arcface", "cosface")}
    for kind in ("arcface", "cosface"):
        accuracy, gap = result[kind]
        assert accuracy > 0.9 > 1.0 / classes  # margin-free argmax of cos on the training set
        assert gap > result["softmax"][1] + 0.1, result
        assert gap > result["normface"][1] + 0.1, result
