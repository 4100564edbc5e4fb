"""Export a trained embedding network to ONNX (BatchNorm folded, dynamic batch).

    gluonfr-export-onnx --model mobilefacenet \\
        --params runs/mfn/mobilefacenet-86000.params \\
        --out mobilefacenet.onnx

The ONNX model takes (N, 3, 112, 112) float32 RGB in 0..255, like the MXNet one, and is
checked against MXNet on a random batch before the command returns.
"""
import sys

from gluonfr._optional import import_optional
from gluonfr.cli import command_parser, exits_on_bad_input
from gluonfr.model_zoo import load_embedding_net
from gluonfr.utils import export_onnx

import mxnet as mx
import numpy as np


@exits_on_bad_input("gluonfr-export-onnx")
def main(argv=None):
    """Export, check against MXNet, return the exit status."""
    p = command_parser("gluonfr-export-onnx", __doc__)
    p.add_argument("--model", help="model-zoo name")
    p.add_argument("--params", help="backbone parameters (default: the published ones)")
    p.add_argument("--symbol", help="exported -symbol.json instead of --model")
    p.add_argument("--embedding-size", type=int)
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--static-batch", action="store_true", help="fix the batch size at 1")
    p.add_argument("--no-fold-bn", dest="fold_bn", action="store_false")
    args = p.parse_args(argv)
    net = load_embedding_net(model=args.model, params=args.params, symbol=args.symbol,
                             embedding_size=args.embedding_size, hybridize=False)
    shape = (1, 3, args.image_size, args.image_size)
    path = export_onnx(net, args.out, input_shape=shape, dynamic_batch=not args.static_batch,
                       fold_batchnorm=args.fold_bn)
    ort = import_optional("onnxruntime", "onnx", "gluonfr-export-onnx's check")
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    batch = 1 if args.static_batch else 4
    x = np.random.RandomState(0).uniform(0, 255, (batch,) + shape[1:]).astype(np.float32)
    diff = np.abs(sess.run(None, {sess.get_inputs()[0].name: x})[0]
                  - net(mx.nd.array(x)).asnumpy()).max()
    print(f"wrote {path}; max |onnxruntime - mxnet| on a random batch of {batch}: {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
