import os

import gluonfr  # noqa: F401
from gluonfr.utils import export_onnx

import mxnet as mx
import numpy as np
import onnx
import onnxruntime as ort
from mxnet.gluon import nn


class _Normalize(nn.HybridBlock):
    def hybrid_forward(self, F, x):
        return (x - 127.5) * 0.0078125


def _small_net():
    """Every op our embedding networks use: in-graph normalisation, conv + BN (folded),
    per-channel PReLU, depthwise conv, fixed-gamma BN, dropout, dense, 1-D BN."""
    net = nn.HybridSequential()
    net.add(_Normalize(), nn.Conv2D(8, 3, padding=1, use_bias=False), nn.BatchNorm(epsilon=2e-5),
            nn.PReLU(in_channels=8), nn.Conv2D(8, 3, strides=2, padding=1, groups=8,
                                               use_bias=False),
            nn.BatchNorm(scale=False), nn.Flatten(), nn.Dropout(0.4), nn.Dense(16),
            nn.BatchNorm(scale=False, epsilon=2e-5))
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 3, 12, 12)))
    rng = np.random.RandomState(0)
    # non-trivial statistics and slopes, so a wrong fold or broadcast shows
    for p in net.collect_params(".*running.*|.*gamma|.*beta|.*alpha").values():
        p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, size=p.shape)))
    return net


def test_onnx_matches_mxnet_with_dynamic_batch(tmp_path):
    net = _small_net()
    path = export_onnx(net, str(tmp_path / "net.onnx"), input_shape=(1, 3, 12, 12))
    assert os.listdir(tmp_path) == ["net.onnx"]  # nothing half-written left behind
    model = onnx.load(path)
    ops = [node.op_type for node in model.graph.node]
    assert "BatchNormalization" in ops  # the 1-D one after Gemm stays
    assert ops.count("BatchNormalization") == 1 and ops.count("Conv") == 2  # two folded
    assert [i.name for i in model.graph.input] == ["data"]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.RandomState(1)
    for batch in (1, 4):
        x = rng.uniform(0, 255, size=(batch, 3, 12, 12)).astype(np.float32)
        ours = net(mx.nd.array(x)).asnumpy()
        theirs = sess.run(None, {"data": x})[0]
        assert theirs.shape == ours.shape
        np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=0)
