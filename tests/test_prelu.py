"""gluonfr.nn.PReLU: nn.PReLU's function, gradients and files, on oneDNN kernels."""
import json

import gluonfr  # noqa: F401
from gluonfr.nn import PReLU, native_prelu

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from mxnet.gluon import nn

SLOPES = np.array([0.25, -0.3, 1.5, 0.0, 0.7], dtype=np.float32)


def _grads(block, x, weights):
    x = x.copy()
    x.attach_grad()
    with autograd.record():
        y = block(x)
        loss = (y * weights).sum()
    loss.backward()
    return y.asnumpy(), x.grad.asnumpy(), block.alpha.grad().asnumpy()


@pytest.mark.parametrize("hybridize", [False, True])
def test_values_and_gradients_match_the_formula_and_nn_prelu(hybridize):
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((3, 5, 4, 4)).astype(np.float32)
    x_np[0, :, 0, 0] = 0.0  # the kink
    w_np = rng.standard_normal(x_np.shape).astype(np.float32)
    x, w = mx.nd.array(x_np), mx.nd.array(w_np)
    ours, ref = PReLU(5), nn.PReLU(in_channels=5)
    for block in (ours, ref):
        block.initialize()
        block.alpha.set_data(mx.nd.array(SLOPES))
        if hybridize:
            block.hybridize()
    y, dx, da = _grads(ours, x, w)
    a = SLOPES.reshape(1, 5, 1, 1)
    x64, w64 = x_np.astype(np.float64), w_np.astype(np.float64)
    np.testing.assert_allclose(y, np.where(x64 > 0, x64, a * x64), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dx, w64 * np.where(x64 > 0, 1.0, a), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(da, (w64 * np.minimum(x64, 0)).sum(axis=(0, 2, 3)),
                               rtol=1e-5, atol=1e-5)
    for got, want in zip((y, dx, da), _grads(ref, x, w)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _net(act):
    net = nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(nn.Conv2D(5, 1, in_channels=5), act)
    return net


def test_files_are_those_of_nn_prelu_and_load_without_initialize(tmp_path):
    ref = _net(nn.PReLU(in_channels=5))
    ref.initialize()
    ref[1].alpha.set_data(mx.nd.array(SLOPES))
    ref.save_parameters(str(tmp_path / "ref.params"))
    ours = _net(PReLU(5))
    # nothing initialised: the constants follow alpha onto the file's context
    ours.load_parameters(str(tmp_path / "ref.params"), ctx=mx.cpu(1))
    ours.hybridize()
    x = mx.nd.array(np.linspace(-2, 2, 20).reshape(1, 5, 2, 2), ctx=mx.cpu(1))
    np.testing.assert_allclose(ours(x).asnumpy(), ref(x.as_in_context(mx.cpu())).asnumpy(),
                               rtol=1e-6)
    ours.save_parameters(str(tmp_path / "ours.params"))
    assert set(mx.nd.load(str(tmp_path / "ours.params"))) == {"0.weight", "0.bias", "1.alpha"}


def test_constants_follow_a_context_list_and_reset_ctx():
    block = PReLU(5)
    block.initialize(ctx=[mx.cpu(0), mx.cpu(1)])
    block.hybridize()
    x = mx.nd.array(np.linspace(-1, 1, 10).reshape(2, 5, 1, 1))
    outs = [block(x.as_in_context(c)).asnumpy() for c in (mx.cpu(0), mx.cpu(1))]
    np.testing.assert_array_equal(outs[0], outs[1])
    block.collect_params().reset_ctx(mx.cpu(2))
    np.testing.assert_array_equal(block(x.as_in_context(mx.cpu(2))).asnumpy(), outs[0])


def test_float16_cast_keeps_float32_slopes():
    block = PReLU(5)
    block.initialize()
    block.alpha.set_data(mx.nd.array(SLOPES))
    block.cast("float16")
    assert np.dtype(block.alpha.dtype) == np.float32
    x = np.linspace(-2, 2, 20, dtype=np.float16).reshape(1, 5, 2, 2)
    y = block(mx.nd.array(x, dtype="float16"))
    assert y.dtype == np.float16
    a = SLOPES.reshape(1, 5, 1, 1)
    np.testing.assert_allclose(y.asnumpy(), np.where(x > 0, x, a * x), rtol=2e-3, atol=2e-3)


def test_native_prelu_traces_the_single_op_and_restores():
    block = nn.HybridSequential()
    block.add(nn.Conv2D(5, 1, in_channels=3), PReLU(5))
    data = mx.sym.var("data")
    with native_prelu(block):
        ops = [n["op"] for n in json.loads(block(data).tojson())["nodes"]]
    assert "LeakyReLU" in ops and "BatchNorm" not in ops
    ops = [n["op"] for n in json.loads(block(data).tojson())["nodes"]]
    assert "LeakyReLU" not in ops and ops.count("BatchNorm") == 2
