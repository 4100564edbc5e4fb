"""Baseline worker: forward + backward time of one of gluon-face 1.0.2's heads.

As its training script runs them: the output layer (``NormDense(weight_norm, feature_norm)``,
or a ``Dense`` layer for the logit losses) is part of the hybridized network, the loss block
is not hybridized. ``--loss`` names our head; :data:`COUNTERPARTS` says which gluon-face
class (and settings) computes the same logits as our engine's defaults (docs/heads.rst):

* ``arcface``: ``ArcLoss(easy_margin=False)`` (insightface's rule, as its script passes);
* ``cosface``: ``CosLoss``; ``sphereface``: ``ASoftmax`` (its lambda is Python state, which
  only matters for the values, not the time);
* ``combined`` and ``mv_softmax``: ``SVXSoftmax``, whose ``m2`` is the cosine margin, ``m3``
  the angular one and ``t`` our ``t + 1`` (``t = 1``: no re-weighting, the combined margin);
* ``normface``: ``COCOLoss`` (it owns its class centres and normalises both sides);
* ``l2softmax``: ``L2Softmax`` after a ``Dense`` layer, gluon-face's use; it normalises the
  logit vector, not the feature as ours does (a different function, the same cost class);
* ``softmax``: a ``Dense`` layer + gluon's ``SoftmaxCrossEntropyLoss`` (its ``'softmax'``).

gluon-face has no CurricularFace, AdaCos, AdaFace, MagFace, Circle or sub-center ArcFace; its
``LGMLoss`` broadcasts a (classes, batch, emb) float32 tensor (5.6 GB at 85,742 x 128 x 128),
so those rows have no baseline.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "workers"))
from gluonfr.loss import (  # noqa: E402  (gluon-face 1.0.2)
    ArcLoss,
    ASoftmax,
    COCOLoss,
    CosLoss,
    L2Softmax,
    SVXSoftmax,
)
from gluonfr.nn.basic_blocks import NormDense  # noqa: E402

import _util  # noqa: E402
import mxnet as mx  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402

#: our head -> (output layer: 'norm' | 'dense' | None, gluon-face loss(classes, emb))
COUNTERPARTS = {
    "arcface": ("norm", lambda c, e: ArcLoss(c, m=0.5, s=64, easy_margin=False)),
    "cosface": ("norm", lambda c, e: CosLoss(c, m=0.35, s=64)),
    "combined": ("norm", lambda c, e: SVXSoftmax(c, s=64, t=1, m1=1, m2=0.2, m3=0.3)),
    "sphereface": ("norm", lambda c, e: ASoftmax(c, m=4, s=64)),
    "mv_softmax": ("norm", lambda c, e: SVXSoftmax(c, s=32, t=1.2, m2=0.35)),
    "normface": (None, lambda c, e: COCOLoss(c, e, alpha=64)),
    "l2softmax": ("dense", lambda c, e: L2Softmax(c, alpha=64)),
    "softmax": ("dense", lambda c, e: gluon.loss.SoftmaxCrossEntropyLoss()),
}


def main():
    p = _util.add_step_args(argparse.ArgumentParser(description=__doc__), 128, seconds=3.0)
    p.add_argument("--emb", type=int, default=128)
    p.add_argument("--loss", default="arcface", choices=sorted(COUNTERPARTS))
    args = p.parse_args()
    mx.random.seed(0)
    layer, make_loss = COUNTERPARTS[args.loss]
    if layer == "norm":
        out = NormDense(args.classes, weight_norm=True, feature_norm=True, in_units=args.emb,
                        prefix="output_")
    elif layer == "dense":
        out = gluon.nn.Dense(args.classes, in_units=args.emb, prefix="output_")
    else:
        out = None  # the loss owns its centres
    if out is not None:
        out.initialize(mx.init.MSRAPrelu())
        out.hybridize()
    loss_fn = make_loss(args.classes, args.emb)
    if out is None:
        loss_fn.initialize(mx.init.Xavier(magnitude=2.24))
    emb, label = _util.random_head_inputs(args.classes, args.batch, args.emb)

    def step():
        with autograd.record():
            loss = loss_fn(emb if out is None else out(emb), label)
        loss.backward()
        mx.nd.waitall()

    times = _util.timed(step, args.warmup, args.seconds, min_iters=3)
    stats = _util.summarise(times)
    _util.emit({"ms": 1000 * stats["median_s"], "timing": stats, "classes": args.classes,
                "emb": args.emb, "batch": args.batch, "loss": args.loss})


if __name__ == "__main__":
    main()
