"""Are two photos the same person? Align both with their 5 landmarks, embed, compare.

    python examples/verify_two_faces.py a.jpg b.jpg --landmarks landmarks.json \\
        [--params mobilefacenet.params] [--eval-json eval.json]

``landmarks.json`` maps file names to ``{"landmarks5": [[x, y] x 5]}`` (left eye, right eye,
nose, left and right mouth corner), as ``../shared/data/real-faces/landmarks.json`` does;
any 5-point detector gives them. Without ``--params`` the published weights are used.
"""
import argparse
import json
import os

import gluonfr
from gluonfr.embedder import threshold_from_eval


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("image_a")
    p.add_argument("image_b")
    p.add_argument("--landmarks", required=True)
    p.add_argument("--model", default="mobilefacenet")
    p.add_argument("--params")
    p.add_argument("--eval-json", help="scripts/eval.py output to calibrate the threshold")
    args = p.parse_args(argv)

    with open(args.landmarks) as f:
        table = json.load(f)
    lmk = [table[os.path.basename(path)]["landmarks5"] for path in (args.image_a, args.image_b)]
    threshold = threshold_from_eval(args.eval_json) if args.eval_json else None
    embedder = gluonfr.FaceEmbedder(args.model, params=args.params,
                                    pretrained=args.params is None, threshold=threshold)
    similarity, same = embedder.compare(args.image_a, args.image_b,
                                        landmarks_a=lmk[0], landmarks_b=lmk[1])
    print(f"cosine similarity {similarity:.4f} (threshold {embedder.threshold:.3f}): "
          f"{'same person' if same else 'different people'}")
    return similarity, same


if __name__ == "__main__":
    main()
