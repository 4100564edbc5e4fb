"""PReLU folded into the convolutions that read it: same values as the plain graph."""
import gluonfr  # noqa: F401
from gluonfr.model_zoo import get_model
from gluonfr.nn.prelu import PReLU, native_prelu
from gluonfr.utils.fusion import fuse, fusion_available, inference_graph, symbol_block
from gluonfr.utils.prelu_fold import fold_prelu

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import nn


def _randomise(net, seed=0):
    """Statistics away from their initial values and slopes on both sides of 1 (``1 - alpha``
    of either sign in the folded weights), so a wrong fold shows in the outputs."""
    rng = np.random.RandomState(seed)
    for name, p in net.collect_params().items():
        if name.endswith("alpha"):
            p.set_data(mx.nd.array(rng.uniform(-0.5, 1.5, size=p.shape)))
        elif name.endswith(("running_var", "gamma")):
            p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, size=p.shape)))
        elif name.endswith(("running_mean", "beta")):
            p.set_data(mx.nd.array(rng.uniform(-0.3, 0.3, size=p.shape)))
    return net


def _run(sym, args, auxs, x):
    return symbol_block(sym, args, auxs)(x).asnumpy()


def _ops(sym):
    return [s.attr("op_name") for s in sym.get_internals() if s.attr("op_name") != "null"]


@pytest.fixture(scope="module")
def mobilefacenet():
    mx.random.seed(0)
    net = _randomise(get_model("mobilefacenet", input_size=32))
    x = mx.nd.array(np.random.RandomState(1).uniform(0, 255, (4, 3, 32, 32)))
    return net, x, net(x).asnumpy()


@pytest.mark.parametrize("form", ["gluonfr", "LeakyReLU"])
def test_every_mobilefacenet_prelu_folds_and_the_outputs_stay(mobilefacenet, form):
    net, x, ref = mobilefacenet
    if form == "LeakyReLU":  # the op insightface symbols and nn.PReLU trace to
        with native_prelu(net):
            sym, args, auxs = inference_graph(net)
    else:
        sym, args, auxs = inference_graph(net)
    alphas = [p for n, p in net.collect_params().items() if n.endswith("alpha")]
    new, new_args, new_auxs, folded = fold_prelu(sym, args, auxs)
    assert len(folded) == len(alphas) == 33
    ops = _ops(new)
    # no PReLU piece is left: no slope is read by anything
    assert "LeakyReLU" not in ops and "_rminus_scalar" not in ops
    assert not [n for n in new.list_arguments() if n.endswith("alpha")]
    out = _run(new, new_args, new_auxs, x)
    assert np.abs(out - ref).max() <= 1e-5 * np.abs(ref).max()
    assert not np.array_equal(out, ref)  # another graph computed it


def _chain(consumer, first=None):
    """conv + BN + PReLU read by ``consumer``; initialised and randomised."""
    net = nn.HybridSequential()
    net.add(first or nn.Conv2D(8, 3, padding=1, use_bias=False), nn.BatchNorm(), PReLU(8),
            *consumer)
    net.initialize(mx.init.Xavier())
    x = mx.nd.array(np.random.RandomState(2).uniform(-1, 1, (2, 3, 9, 9)))
    net(x)
    return _randomise(net, seed=3), x


@pytest.mark.parametrize("consumer", [
    lambda: [nn.Conv2D(6, 3, padding=1, groups=2, use_bias=True), nn.BatchNorm()],  # grouped
    lambda: [nn.Conv2D(8, 3, strides=2, padding=1, groups=8, use_bias=False)],  # depthwise
    lambda: [nn.Conv2D(5, 1, use_bias=True)],  # pointwise, no BatchNorm after it
])
def test_grouped_depthwise_and_pointwise_consumers(consumer):
    net, x = _chain(consumer())
    sym, args, auxs = inference_graph(net)
    new, new_args, new_auxs, folded = fold_prelu(sym, args, auxs)
    assert len(folded) == 1
    ref = net(x).asnumpy()
    np.testing.assert_allclose(_run(new, new_args, new_auxs, x), ref,
                               atol=1e-5 * np.abs(ref).max())


def test_two_consumers_and_a_residual_sum():
    class Residual(nn.HybridBlock):
        def __init__(self):
            super().__init__()
            self.stem = nn.HybridSequential()
            self.stem.add(nn.Conv2D(8, 3, padding=1, use_bias=False), nn.BatchNorm(), PReLU(8))
            self.a = nn.HybridSequential()
            self.a.add(nn.Conv2D(8, 1, use_bias=False), nn.BatchNorm())
            self.b = nn.Conv2D(8, 3, padding=1, groups=8)

        def hybrid_forward(self, F, x):
            y = self.stem(x)
            return self.a(y) + x, self.b(y)

    net = Residual()
    net.initialize(mx.init.Xavier())
    x = mx.nd.array(np.random.RandomState(4).uniform(-1, 1, (2, 8, 7, 7)))
    net(x)
    _randomise(net, seed=5)
    sym, args, auxs = inference_graph(net)
    new, new_args, new_auxs, folded = fold_prelu(sym, args, auxs)
    assert len(folded) == 1
    # the residual sum went into the first run of the 1x1 convolution
    assert "_fold_residual" in " ".join(new.get_internals().list_outputs())
    block = symbol_block(new, new_args, new_auxs)
    for got, want in zip(block(x), net(x)):
        np.testing.assert_allclose(got.asnumpy(), want.asnumpy(),
                                   atol=1e-5 * np.abs(want.asnumpy()).max())


def test_costly_or_non_convolution_consumers_keep_their_prelu():
    # a full 3x3 convolution over 16 channels: 16 * 9 = 144 multiply-adds per element, + 1
    costly, x = _chain([nn.Conv2D(16, 3, padding=1)], first=nn.Conv2D(8, 3, padding=1))
    sym, args, auxs = inference_graph(costly)
    assert fold_prelu(sym, args, auxs, max_macs=100)[3] == []
    assert len(fold_prelu(sym, args, auxs, max_macs=145)[3]) == 1
    flat, x = _chain([nn.Flatten(), nn.Dense(4)])
    sym, args, auxs = inference_graph(flat)
    new, *_, folded = fold_prelu(sym, args, auxs)
    assert folded == [] and new is sym


@pytest.mark.skipif(not fusion_available(), reason="MXNet without MKLDNN")
def test_fused_network_is_a_snapshot_of_the_weights(mobilefacenet):
    net, x, ref = mobilefacenet
    fused = fuse(net, (1, 3, 32, 32))
    ops = _ops(fused(mx.sym.var("data")))
    assert "_rminus_scalar" not in ops and "elemwise_add" not in ops
    before = fused(x).asnumpy()
    alpha = next(iter(net.collect_params(".*alpha").values()))
    saved = alpha.data().copy()
    alpha.set_data(saved + 1.0)
    try:
        np.testing.assert_array_equal(fused(x).asnumpy(), before)
        assert np.abs(before - ref).max() <= 1e-4 * np.abs(ref).max()
    finally:
        alpha.set_data(saved)
