"""Deploy with ONNX Runtime: export a network once, then embed faces without MXNet.

    python examples/onnx_inference.py face_a.png face_b.png --out model.onnx \\
        [--params mobilefacenet.params]

The exported model takes (N, 3, 112, 112) float32 RGB in 0..255 (normalisation is inside)
and returns raw embeddings; flip-sum and L2-normalise them as the verification protocol does.
The inference half of this file needs only numpy, OpenCV and onnxruntime.
"""
import argparse

import cv2
import numpy as np
import onnxruntime as ort


def export(model, params, out):
    """The MXNet half: export (BatchNorm folded, dynamic batch)."""
    import gluonfr  # noqa: F401
    from gluonfr.model_zoo import load_embedding_net
    from gluonfr.utils import export_onnx

    net = load_embedding_net(model=model, params=params, hybridize=False)
    return export_onnx(net, out)


def embed(session, paths):
    """Flip-sum, L2-normalised embeddings of 112x112 aligned crops."""
    rgb = [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in paths]
    x = np.stack(rgb).transpose(0, 3, 1, 2).astype(np.float32)
    name = session.get_inputs()[0].name
    emb = session.run(None, {name: x})[0] + session.run(None, {name: x[..., ::-1].copy()})[0]
    return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs=2, help="two 112x112 aligned face crops")
    p.add_argument("--out", default="model.onnx")
    p.add_argument("--model", default="mobilefacenet")
    p.add_argument("--params")
    args = p.parse_args(argv)
    path = export(args.model, args.params, args.out)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    emb = embed(session, args.images)
    similarity = float(emb[0] @ emb[1])
    print(f"{path}: cosine similarity {similarity:.4f}")
    return similarity


if __name__ == "__main__":
    main()
