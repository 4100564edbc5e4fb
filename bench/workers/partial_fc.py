"""Worker: one training step of the classification head alone: forward, backward, update.

``--head replicated`` is the head the engine builds today (``build_heads``: NormDense +
ArcFace, hybridized as on CPU) with the engine's SGD (``make_optimizer``: momentum 0.9,
wd 5e-4) through a ``gluon.Trainer``; ``--head pfc`` is ``gluonfr.nn.PartialFC`` at
``--sample-rate`` (one shard: this process's device) + the same ArcFace loss on its cosines,
updated by ``PartialFC.update`` with the same SGD settings. Gradients flow to the
embeddings as in training. ``--mem-limit-gib`` caps the process's data segment
(RLIMIT_DATA, which covers MXNet's allocations): a head that does not fit fails with an
allocation error instead of pushing the machine into swap.
"""
import argparse
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gluonfr  # noqa: E402,F401  (numpy aliases before mxnet)

import _util  # noqa: E402
import mxnet as mx  # noqa: E402
from mxnet import autograd  # noqa: E402

LR, WD, MOMENTUM = 0.1, 5e-4, 0.9


def replicated_step(classes, emb_dim, batch):
    from gluonfr.engine import TrainConfig
    from gluonfr.engine.head import build_heads
    from gluonfr.engine.optim import make_optimizer

    from mxnet import gluon

    head, _ = build_heads(TrainConfig(loss="arcface", max_iters=1, batch_size=batch), classes,
                          emb_dim)
    head.initialize(mx.init.Xavier())
    head.hybridize()  # the engine's CPU setting (no static_alloc)
    trainer = gluon.Trainer(head.collect_params(), make_optimizer("sgd", LR, WD, MOMENTUM))

    def step(emb, label):
        with autograd.record():
            loss, _ = head(emb, label)
        loss.backward()
        trainer.step(batch)

    return step, {}


def pfc_step(classes, emb_dim, batch, sample_rate):
    from gluonfr.loss import ArcFaceLoss
    from gluonfr.nn import PartialFC

    pfc = PartialFC(classes, emb_dim, sample_rate=sample_rate)
    pfc.initialize()
    loss_fn = ArcFaceLoss(s=64.0, m=0.5, check_label=False)
    info = {}

    def step(emb, label):
        with autograd.record():
            cos, lab = pfc(emb, label)
            loss = loss_fn(cos, lab)
        loss.backward()
        info["sampled"] = int(cos.shape[1])
        pfc.update(LR, wd=WD, momentum=MOMENTUM, rescale_grad=1.0 / batch)

    return step, info


def main():
    p = _util.add_step_args(argparse.ArgumentParser(description=__doc__), 128, seconds=3.0)
    p.add_argument("--emb", type=int, default=512)
    p.add_argument("--head", choices=("replicated", "pfc"), default="replicated")
    p.add_argument("--sample-rate", type=float, default=1.0)
    p.add_argument("--mem-limit-gib", type=float, default=0.0, help="0: no limit")
    args = p.parse_args()
    if args.mem_limit_gib > 0:
        cap = int(args.mem_limit_gib * 2 ** 30)
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    mx.random.seed(0)
    if args.head == "replicated":
        step, info = replicated_step(args.classes, args.emb, args.batch)
    else:
        step, info = pfc_step(args.classes, args.emb, args.batch, args.sample_rate)
    emb, label = _util.random_head_inputs(args.classes, args.batch, args.emb)

    def call():
        step(emb, label)
        mx.nd.waitall()

    times = _util.timed(call, args.warmup, args.seconds, min_iters=3)
    stats = _util.summarise(times)
    _util.emit({"ms": 1000 * stats["median_s"], "timing": stats, "classes": args.classes,
                "emb": args.emb, "batch": args.batch, "head": args.head,
                "sample_rate": args.sample_rate if args.head == "pfc" else None,
                "sampled_classes": info.get("sampled", args.classes),
                "mem_limit_gib": args.mem_limit_gib})


if __name__ == "__main__":
    main()
