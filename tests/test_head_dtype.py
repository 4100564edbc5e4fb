"""The training head under float16: margin and softmax in float32 on every path (imperative,
hybridized inside the head, MXNet AMP) and target-scatter indices built as integers."""
import json
import os
import subprocess
import sys

import gluonfr  # noqa: F401
from gluonfr.engine.head import TrainHead
from gluonfr.loss import ArcFaceLoss

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import HybridBlock

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


class HalfCosines(HybridBlock):
    """A classifier whose cosines come out in float16, as NormDense's do under AMP."""

    def hybrid_forward(self, F, x):
        return F.cast(x, "float16")


def _arcface_reference(cos, label, s=8.0, m=0.5):
    cos = cos.astype(np.float64)
    rows = np.arange(len(cos))
    c = np.clip(cos[rows, label], -1, 1)
    phi = np.where(c > np.cos(np.pi - m), np.cos(np.arccos(c) + m), c - np.sin(np.pi - m) * m)
    logits = s * cos
    logits[rows, label] = s * phi
    logits -= logits.max(axis=1, keepdims=True)
    return -(logits[rows, label] - np.log(np.exp(logits).sum(axis=1)))


@pytest.mark.parametrize("hybridize", [False, True])
def test_float16_cosines_past_2048_rows_get_the_float32_margin(hybridize):
    # 4,100 rows: float16 counts rows exactly only up to 2,048 (then in steps of 2, 4)
    rng = np.random.default_rng(0)
    n, classes = 4100, 3
    cos = rng.uniform(-0.9, 0.9, (n, classes)).astype(np.float16)
    label = rng.integers(0, classes, n)
    head = TrainHead(HalfCosines(), ArcFaceLoss(s=8.0, m=0.5, check_label=False), half=True)
    if hybridize:
        head.hybridize()
    loss, hit = head(mx.nd.array(cos, dtype="float32"), mx.nd.array(label, dtype="float32"))
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss.asnumpy(), _arcface_reference(cos, label), rtol=2e-5,
                               atol=2e-5)
    np.testing.assert_array_equal(hit.asnumpy(), cos.argmax(axis=1) == label)


_AMP_TYPES = """
import json, sys
import gluonfr
import mxnet as mx
from mxnet.contrib import amp
amp.init(target_dtype="float16")
from gluonfr.engine import TrainConfig
from gluonfr.engine.head import build_heads

result = {}
for loss in sys.argv[1:]:
    cfg = TrainConfig(loss=loss, ctx="0", dtype="float16", max_iters=10, margin_s=64.0)
    head, _ = build_heads(cfg, num_classes=5000, embedding_size=16)
    out = head(mx.sym.var("embedding"), mx.sym.var("label"))
    internals = out[0].get_internals()
    _, types, _ = internals.infer_type(embedding="float32", label="float32")
    result[loss] = {n: t.__name__ for n, t in zip(internals.list_outputs(), types)}
print(json.dumps(result))
"""


def test_amp_head_computes_margin_and_softmax_in_float32():
    # amp.init patches MXNet's operators for the whole process: a subprocess of its own
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    losses = ["arcface", "cosface", "combined"]
    proc = subprocess.run([sys.executable, "-c", _AMP_TYPES, *losses], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for loss in losses:
        types = result[loss]
        fc = [n for n in types if "fullyconnected" in n and n.startswith("fc7_")]
        assert fc and all(types[n] == "float16" for n in fc), fc  # AMP is on: float16 matmul
        inside = {n: t for n, t in types.items() if n.split("_")[0].endswith("loss0")}
        assert inside, sorted(types)
        half = sorted(n for n, t in inside.items() if t == "float16")
        assert not half, (loss, half)  # nothing of the margin or the softmax is float16
        softmax = [n for n in inside if "log_softmax" in n]
        assert softmax and all(inside[n] == "float32" for n in softmax)
        rows = [n for n in inside if "arange_like" in n]
        if loss != "cosface":  # cosface edits the target without a scatter
            assert rows and all(inside[n] == "int64" for n in rows), {n: inside[n] for n in rows}
