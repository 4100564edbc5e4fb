"""Baseline worker: gluon-face 1.0.2's MobileFaceNet parameters, and its graph for counting.

Counts the learnable parameter elements (running statistics excluded, as
``gluonfr.utils.summary`` counts) and exports the embedding network's symbol to ``--out`` so
that the multiply-adds are counted by the same counter as ours.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "workers"))
from gluonfr.model_zoo import get_model  # noqa: E402  (gluon-face 1.0.2)

import _util  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="mobilefacenet")
    p.add_argument("--out", required=True, help="prefix for <out>-symbol.json")
    args = p.parse_args()
    net = get_model(args.model, need_cls_layer=False)
    net.initialize(mx.init.MSRAPrelu())
    net.hybridize()
    net(mx.nd.zeros((1, 3, 112, 112)))
    params = sum(int(np.prod(v.shape)) for v in net.collect_params().values()
                 if v.grad_req != "null")
    aux = sum(int(np.prod(v.shape)) for v in net.collect_params().values()
              if v.grad_req == "null")
    net.export(args.out)
    _util.emit({"params": params, "aux": aux, "symbol": args.out + "-symbol.json",
                "file_mib": 4 * (params + aux) / 2 ** 20})


if __name__ == "__main__":
    main()
