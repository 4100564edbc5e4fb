"""Embed every face image of a folder: writes ``embeddings.npy`` and ``names.txt``.

    python examples/extract_embeddings.py photos/ out/ [--landmarks landmarks.json] \\
        [--params mobilefacenet.params]

Images are 112x112 aligned crops, or whole photos listed in ``--landmarks`` (file name ->
``{"landmarks5": ...}``), which are aligned first. Row ``i`` of the array is line ``i`` of
``names.txt``; rows have unit length, so ``E @ E.T`` is the cosine-similarity matrix.
"""
import argparse
import os

import gluonfr
from gluonfr.data.align import lookup_landmarks, read_landmarks
from gluonfr.data.pack import IMAGE_EXTENSIONS

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder")
    p.add_argument("out_dir")
    p.add_argument("--landmarks")
    p.add_argument("--model", default="mobilefacenet")
    p.add_argument("--params")
    p.add_argument("--backend", choices=("mxnet", "onnx"), default="mxnet")
    args = p.parse_args(argv)

    names = sorted(n for n in os.listdir(args.folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise SystemExit(f"{args.folder}: no images")
    landmarks = None
    if args.landmarks:
        table = read_landmarks(args.landmarks)
        found = {n: lookup_landmarks(table, os.path.join(args.folder, n), root=args.folder)
                 for n in names}
        names = [n for n in names if found[n] is not None]  # whole photos need landmarks
        landmarks = [found[n] for n in names]
    embedder = gluonfr.FaceEmbedder(args.model, params=args.params,
                                    pretrained=args.params is None, backend=args.backend)
    emb = embedder.embed([os.path.join(args.folder, n) for n in names], landmarks=landmarks)
    os.makedirs(args.out_dir, exist_ok=True)
    np.save(os.path.join(args.out_dir, "embeddings.npy"), emb)
    with open(os.path.join(args.out_dir, "names.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    print(f"{len(names)} embeddings of size {emb.shape[1]} -> {args.out_dir}")
    return names, emb


if __name__ == "__main__":
    main()
