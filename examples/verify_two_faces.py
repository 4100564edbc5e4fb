"""Are two photos the same person? Align both with their 5 landmarks, embed, compare.

    python examples/verify_two_faces.py a.jpg b.jpg --landmarks landmarks.json \\
        [--params mobilefacenet.params] [--eval-json eval.json]

``landmarks.json`` maps file names to ``{"landmarks5": [[x, y] x 5]}`` (left eye, right eye,
nose, left and right mouth corner), as ``../shared/data/real-faces/landmarks.json`` does;
any 5-point detector gives them. Without ``--params`` the published weights are used.
"""
import argparse

import gluonfr
from gluonfr.data.align import lookup_landmarks, read_landmarks
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

    table = read_landmarks(args.landmarks)
    lmk = [lookup_landmarks(table, path) for path in (args.image_a, args.image_b)]
    for path, points in zip((args.image_a, args.image_b), lmk):
        if points is None:
            raise SystemExit(f"{args.landmarks}: no landmarks for {path}")
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
