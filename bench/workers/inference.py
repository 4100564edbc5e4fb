"""Worker: images/s of one of our networks on one execution path, at several batch sizes.

``--mode static``: Gluon hybridized with static_alloc / static_shape (what ``get_model`` users
get); ``optimize_for``: the library's oneDNN-fused graph (``gluonfr.utils.fuse``, what
``FaceEmbedder`` and evaluation run on the CPU by default); ``int8``: ``gluonfr.utils.
quantize_int8`` (its default naive calibration on procedural 112x112 faces; speed does not
depend on how good the ranges are); ``onnx``: ``gluonfr.utils.export_onnx`` (Conv+BN folded)
run in ONNX Runtime's CPU provider, as ``FaceEmbedder(backend='onnx')`` does.
``--native-prelu`` runs the MXNet paths with the textbook ``LeakyReLU(act_type='prelu')`` op
(``gluonfr.nn.native_prelu``): the library before its oneDNN PReLU, measured in the same run.

``--mode evalbin``: end-to-end seconds of ``gluonfr.metrics.evaluate_targets`` (flip, 10 folds)
over a ``.bin`` (``--bin``), float32 fused and int8 (``--precision``); ``--images`` limits
the calibration crops taken from the same file.
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


def _calibration_crops(num=64):
    from gluonfr.data import synthetic

    return np.stack([synthetic.render_identity_image(0, i % 16, i // 16, size=112)
                     for i in range(num)])


def _net(model, batch, mode):
    mx.random.seed(0)
    net = get_model(model)
    x = mx.nd.array(np.random.default_rng(0).uniform(0, 255, (batch, 3, 112, 112)))
    if mode == "optimize_for":
        from gluonfr.utils import fuse

        net = fuse(net, x)
    elif mode == "int8":
        from gluonfr.utils import quantize_int8

        net = quantize_int8(net, _calibration_crops(), num_calib=64)
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


def measure_evalbin(args):
    import time

    from gluonfr.data import load_bin
    from gluonfr.metrics import evaluate_targets

    t0 = time.perf_counter()
    images, issame = load_bin(args.bin)
    out = {"mode": "evalbin", "model": args.model, "precision": args.precision,
           "images": int(images.shape[0]), "load_s": time.perf_counter() - t0}
    mx.random.seed(0)
    net = get_model(args.model)
    net.hybridize(static_alloc=True, static_shape=True)
    if args.precision == "int8":
        from gluonfr.utils import quantize_int8

        t0 = time.perf_counter()
        calib = images[:args.images].asnumpy()
        net = quantize_int8(net, calib, num_calib=len(calib))
        out["calibration_s"] = time.perf_counter() - t0
        out["calibration_images"] = len(calib)
    targets = {"bin": (images, issame)}
    evaluate_targets(net, {"bin": (images[:64], issame[:32])}, progress=False)  # warm-up
    t0 = time.perf_counter()
    res = evaluate_targets(net, targets, progress=False, fuse=args.precision != "static")
    out["eval_s"] = time.perf_counter() - t0
    out["accuracy"] = float(res["bin"]["accuracy"])
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="mobilefacenet")
    p.add_argument("--mode", choices=("static", "optimize_for", "int8", "onnx", "evalbin"),
                   default="static")
    p.add_argument("--bin", help="evalbin: the .bin file")
    p.add_argument("--precision", choices=("static", "float32", "int8"), default="float32",
                   help="evalbin: plain static graph, fused float32 or int8")
    p.add_argument("--images", type=int, default=500, help="evalbin: calibration crops")
    p.add_argument("--batches", default="1,32,128")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--min-iters", type=int, default=3)
    p.add_argument("--native-prelu", action="store_true")
    args = p.parse_args()
    if args.mode == "evalbin":
        _util.emit(measure_evalbin(args))
        return
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
