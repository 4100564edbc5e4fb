"""Worker: images/s of one of our networks on one execution path, at several batch sizes.

``--mode static``: Gluon hybridized with static_alloc / static_shape (what ``get_model`` users
get); ``optimize_for``: the same after ``optimize_for(x, backend='MKLDNN')`` (oneDNN graph
fusion); ``onnx``: ``gluonfr.utils.export_onnx`` (Conv+BN folded) run in ONNX Runtime's CPU
provider, as ``FaceEmbedder(backend='onnx')`` does. ``--native-prelu`` runs the MXNet paths with
the textbook ``LeakyReLU(act_type='prelu')`` op (``gluonfr.nn.native_prelu``): the library
before its oneDNN PReLU, measured in the same run.
"""
import argparse
import contextlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gluonfr  # noqa: E402,F401  (numpy aliases before mxnet)
from gluonfr.model_zoo import get_model  # noqa: E402
from gluonfr.nn import native_prelu  # noqa: E402

import _util  # noqa: E402
import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402


def _net(model, batch, mode):
    mx.random.seed(0)
    net = get_model(model)
    x = mx.nd.array(np.random.default_rng(0).uniform(0, 255, (batch, 3, 112, 112)))
    if mode == "optimize_for":
        net.optimize_for(x, backend="MKLDNN", static_alloc=True, static_shape=True)
    else:
        net.hybridize(static_alloc=True, static_shape=True)
    return net, x


def measure_mxnet(model, batch, mode, args):
    net, x = _net(model, batch, mode)
    with native_prelu(net) if args.native_prelu else contextlib.nullcontext():
        return _util.timed(lambda: net(x).wait_to_read(), args.warmup, args.seconds,
                           args.min_iters)


def measure_onnx(model, batch, args, workdir):
    from gluonfr.utils import export_onnx

    import onnxruntime as ort

    path = os.path.join(workdir, f"{model}.onnx")
    if not os.path.exists(path):
        net, _ = _net(model, 1, "static")
        export_onnx(net, path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(0, 255, (batch, 3, 112, 112)).astype(np.float32)
    return _util.timed(lambda: session.run(None, {name: x}), args.warmup, args.seconds,
                       args.min_iters)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="mobilefacenet")
    p.add_argument("--mode", choices=("static", "optimize_for", "onnx"), default="static")
    p.add_argument("--batches", default="1,32,128")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-iters", type=int, default=3)
    p.add_argument("--native-prelu", action="store_true")
    args = p.parse_args()
    out = {"model": args.model, "mode": args.mode, "images_per_s": {}, "timing": {},
           "native_prelu": args.native_prelu}
    with tempfile.TemporaryDirectory() as workdir:
        for b in (int(s) for s in args.batches.split(",")):
            if args.mode == "onnx":
                times = measure_onnx(args.model, b, args, workdir)
            else:
                times = measure_mxnet(args.model, b, args.mode, args)
            _util.record_rate(out, b, times)
    _util.emit(out)


if __name__ == "__main__":
    main()
