"""What the heads are for: on separable synthetic features, a short training run with a margin
head leaves larger angular gaps between classes than the margin-free softmax (NormFace), and
a triplet term beside it does too. One head per family, a few dozen SGD steps each.
"""
import gluonfr  # noqa: F401
from gluonfr.engine.head import TrainHead
from gluonfr.loss import get_loss
from gluonfr.nn import NormDense

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

C, D, E = 8, 16, 8
MEANS = np.random.RandomState(0).randn(C, D)


def _sample(per_class, seed):
    rng = np.random.RandomState(seed)
    y = np.repeat(np.arange(C), per_class)
    return (MEANS[y] + 0.9 * rng.randn(len(y), D)).astype(np.float32), y


TRAIN, TEST = _sample(40, 1), _sample(30, 2)


def _angles(emb, y):
    """Per test sample: angle to its own class centre and to the nearest other centre."""
    u = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    centres = np.stack([u[y == c].mean(0) for c in range(C)])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    ang = np.arccos(np.clip(u @ centres.T, -1, 1))
    own = ang[np.arange(len(y)), y]
    other = np.where(np.eye(C, dtype=bool)[y], np.inf, ang).min(1)
    return own, other


def _train(name, steps=60, aux=None, **kwargs):
    mx.random.seed(0)
    backbone = gluon.nn.Dense(E, in_units=D, use_bias=False)
    loss = get_loss(name, **kwargs)
    classifier = (gluon.nn.Dense(C, in_units=E) if name == "softmax" else
                  NormDense(C, E, centers_per_class=getattr(loss, "centers_per_class", 1)))
    head = TrainHead(classifier, loss, aux=aux)
    backbone.initialize(mx.init.Xavier())
    head.initialize(mx.init.Xavier())
    backbone.hybridize()
    head.hybridize()
    params = backbone.collect_params()
    params.update(head.collect_params())
    trainer = gluon.Trainer(params, "sgd", {"learning_rate": 0.05, "momentum": 0.9})
    x, y = mx.nd.array(TRAIN[0]), mx.nd.array(TRAIN[1])
    for i in range(steps):
        idx = mx.nd.array(np.random.RandomState(i).choice(len(TRAIN[1]), 64, replace=False))
        with autograd.record():
            value, _ = head(backbone(x.take(idx)), y.take(idx))
        value.backward()
        trainer.step(64)
    return _angles(backbone(mx.nd.array(TEST[0])).asnumpy(), TEST[1]), head


@pytest.fixture(scope="module")
def normface():
    (own, other), _ = _train("normface", s=16.0)
    return float(np.mean(other - own))


@pytest.mark.parametrize("name, kwargs", [
    ("arcface", dict(s=16.0)),                        # additive angular / cosine margins
    ("sphereface", dict(s=16.0, base=5.0)),           # multiplicative margin (lambda at 5)
    ("mv_softmax", dict(s=16.0)),                     # hard negatives re-weighted
    ("adaface", dict(s=16.0)),                        # margin from the feature norm
    ("circle", dict(s=64.0)),                         # self-paced pair weights
])
def test_margin_heads_open_larger_angular_gaps_than_normface(name, kwargs, normface):
    (own, other), head = _train(name, **kwargs)
    gap = float(np.mean(other - own))
    assert gap > normface + 0.03, (name, gap, normface)
    if name == "adaface":  # its running norm statistics moved during training
        assert head.loss.state()["batch_mean"] != 20.0


def test_triplet_term_beside_normface_opens_larger_gaps(normface):
    # random batches of 64 from 8 classes hold ~8 images per class: enough positives
    triplet = get_loss("triplet", margin=0.5, normalize=True, mining="batch_hard")
    (own, other), _ = _train("normface", s=16.0, aux=triplet)
    assert float(np.mean(other - own)) > normface + 0.03
