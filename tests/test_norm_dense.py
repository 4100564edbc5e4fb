"""NormDense: cosines against numpy, initialisation, flags, float16 normalisation, gradients."""
from gluonfr.nn import NormDense, l2_normalize

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd


def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


@pytest.mark.compat
@pytest.mark.parametrize("hybridize", [False, True])
def test_outputs_cosines_of_embeddings_and_centres(hybridize):
    rng = np.random.RandomState(0)
    x = rng.normal(size=(6, 8)).astype(np.float32) * 5
    net = NormDense(11, 8)
    net.initialize()
    if hybridize:
        net.hybridize()
    out = net(mx.nd.array(x)).asnumpy()
    w = net.weight.data().asnumpy()
    assert out.shape == (6, 11)
    np.testing.assert_allclose(out, _unit(x) @ _unit(w).T, rtol=1e-5, atol=1e-6)
    assert np.abs(out).max() <= 1 + 1e-6
    # a centre has no bias: the only parameter is the (classes, in_units) weight
    assert [p.shape for p in net.collect_params().values()] == [(11, 8)]


@pytest.mark.parametrize("weight_norm, feature_norm",
                         [(True, False), (False, True), (False, False)])
def test_normalisation_flags(weight_norm, feature_norm):
    rng = np.random.RandomState(1)
    x = rng.normal(size=(4, 5)).astype(np.float32) * 3
    net = NormDense(7, 5, weight_norm=weight_norm, feature_norm=feature_norm)
    net.initialize()
    w = net.weight.data().asnumpy()
    ref = (_unit(x) if feature_norm else x) @ (_unit(w) if weight_norm else w).T
    np.testing.assert_allclose(net(mx.nd.array(x)).asnumpy(), ref, rtol=1e-5, atol=1e-6)


def test_centres_initialised_normal_001():
    net = NormDense(400, 64)
    net.initialize()
    w = net.weight.data().asnumpy()
    assert w.shape == (400, 64)
    # 25,600 draws: the sample std of Normal(0.01) is within 2% with overwhelming probability
    assert abs(w.std() - 0.01) < 2e-4
    assert abs(w.mean()) < 2e-4


def test_gradients_match_finite_differences_float64():
    rng = np.random.RandomState(2)
    x = rng.normal(size=(3, 4))
    net = NormDense(5, 4, dtype="float64")
    net.initialize()
    w = net.weight.data().asnumpy()
    head = rng.normal(size=(3, 5))

    def f(xv, wv):
        return float((head * (_unit(xv) @ _unit(wv).T)).sum())

    xnd = mx.nd.array(x, dtype="float64")
    xnd.attach_grad()
    with autograd.record():
        out = net(xnd)
    out.backward(mx.nd.array(head, dtype="float64"))
    h = 1e-6
    for value, grad, which in ((x, xnd.grad.asnumpy(), 0), (w, net.weight.grad().asnumpy(), 1)):
        num = np.zeros_like(value)
        for idx in np.ndindex(*value.shape):
            up, down = value.copy(), value.copy()
            up[idx] += h
            down[idx] -= h
            args_up = (up, w) if which == 0 else (x, up)
            args_down = (down, w) if which == 0 else (x, down)
            num[idx] = (f(*args_up) - f(*args_down)) / (2 * h)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


def test_float16_normalisation_does_not_overflow():
    # sum of squares of 512 values of ~300 is ~4.6e7 > float16 max (65504)
    rng = np.random.RandomState(3)
    x = (rng.normal(size=(4, 512)) * 300).astype(np.float16)
    out = l2_normalize(mx.nd, mx.nd.array(x, dtype="float16"), float16=True)
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.asnumpy().astype(np.float64), _unit(x.astype(np.float64)),
                               atol=2e-3)
    # tiny weights (1e-4: squares underflow float16) still get unit norm
    tiny = (rng.normal(size=(3, 64)) * 1e-4).astype(np.float16)
    out = l2_normalize(mx.nd, mx.nd.array(tiny, dtype="float16"), float16=True).asnumpy()
    np.testing.assert_allclose(np.linalg.norm(out.astype(np.float64), axis=1), 1, atol=3e-3)


def test_context_list_gives_the_same_cosines():
    ctxs = [mx.cpu(0), mx.cpu(1)]
    net = NormDense(6, 4)
    net.initialize(ctx=ctxs)
    net.hybridize()
    x = np.random.RandomState(4).normal(size=(4, 4)).astype(np.float32)
    outs = [net(mx.nd.array(x, ctx=c)).asnumpy() for c in ctxs]
    np.testing.assert_array_equal(outs[0], outs[1])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="classes"):
        NormDense(0, 4)
    with pytest.raises(ValueError, match="in_units"):
        NormDense(3, 0)
