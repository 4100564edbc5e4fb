"""Say whether two face images show the same person (cosine similarity of embeddings).

    gluonfr-verify photo1.jpg photo2.jpg --show pair.jpg        # whole photos: faces detected
    gluonfr-verify a.jpg b.jpg --landmarks landmarks.json       # whole photos + 5 points
    gluonfr-verify a.jpg b.jpg --params mfn.params --eval-json eval.json

Exit status: 0 same person, 1 different people, 2 bad input.
"""
import os
import sys

from gluonfr.cli import command_parser

__all__ = ["main"]


def main(argv=None):
    """Compare two face images; print the similarity and the decision; return the status."""
    p = command_parser("gluonfr-verify", __doc__)
    p.add_argument("image_a")
    p.add_argument("image_b")
    p.add_argument("--model", default="mobilefacenet", help="model-zoo name")
    p.add_argument("--params", help="backbone parameter file (default: published weights)")
    p.add_argument("--symbol", help="exported -symbol.json (with --params) instead of --model")
    p.add_argument("--onnx", help="run this .onnx file with ONNX Runtime (a gluonfr export or "
                                  "a third-party model: see --input-mean)")
    p.add_argument("--input-mean", type=float, help="--onnx: the model's input is (x - MEAN) "
                   "/ STD (default: from its model card or graph, printed)")
    p.add_argument("--input-std", type=float, help="--onnx: see --input-mean")
    p.add_argument("--bgr", action="store_true", default=None,
                   help="--onnx: feed BGR instead of RGB")
    p.add_argument("--embedding-size", type=int)
    p.add_argument("--landmarks", help="JSON {image file: {'landmarks5': [[x, y] x 5]}} to align "
                                       "whole photos; without it the detector finds the faces "
                                       "(112x112 images are taken as aligned crops)")
    p.add_argument("--show", metavar="OUT.jpg",
                   help="write the two aligned crops side by side with the similarity")
    p.add_argument("--detector", metavar="MODEL.onnx",
                   help="YuNet model file (default: the model store's YuNet 2023mar)")
    p.add_argument("--min-face", type=int, default=20, help="smallest face side in pixels")
    p.add_argument("--threshold", type=float, help="cosine threshold (default: from --eval-json, "
                                                   "else gluonfr.embedder.DEFAULT_THRESHOLD)")
    p.add_argument("--eval-json", help="gluonfr-eval --json output to calibrate the threshold")
    p.add_argument("--target", help="which target's threshold in --eval-json (default lfw)")
    p.add_argument("--no-flip", dest="flip", action="store_false")
    args = p.parse_args(argv)

    from gluonfr.data.align import lookup_landmarks, read_landmarks
    from gluonfr.data.image import read_image
    from gluonfr.data.preview import pair_tile, save_sheet
    from gluonfr.detect import FaceDetector
    from gluonfr.embedder import FaceEmbedder, threshold_from_eval

    try:
        for path in (args.image_a, args.image_b):
            read_image(path)
        table = read_landmarks(args.landmarks) if args.landmarks else {}
        threshold = args.threshold
        if threshold is None and args.eval_json:
            threshold = threshold_from_eval(args.eval_json, args.target)
        embedder = FaceEmbedder(model=args.model, params=args.params, symbol=args.symbol,
                                pretrained=args.params is None and args.symbol is None
                                and args.onnx is None,
                                backend="onnx" if args.onnx else "mxnet", onnx_path=args.onnx,
                                flip=args.flip, threshold=threshold,
                                embedding_size=args.embedding_size,
                                input_mean=args.input_mean, input_std=args.input_std,
                                bgr=args.bgr,
                                detector=FaceDetector(args.detector, min_size=args.min_face)
                                if args.detector or args.min_face != 20 else None)
        if args.onnx:
            print(f"{os.path.basename(args.onnx)}: {embedder.input_convention['reason']}")
        similarity, same, crops = embedder.compare(
            args.image_a, args.image_b,
            landmarks_a=lookup_landmarks(table, args.image_a),
            landmarks_b=lookup_landmarks(table, args.image_b), return_crops=True)
        if args.show:
            verdict = "SAME" if same else "DIFFERENT"
            caption = (f"cos {similarity:.3f} (thr {embedder.threshold:.3f}) {verdict}\n"
                       f"{os.path.basename(args.image_a)} | {os.path.basename(args.image_b)}")
            save_sheet([pair_tile(crops[0], crops[1], caption, side=224)], args.show)
    except (OSError, ValueError, KeyError) as err:
        print(f"gluonfr-verify: error: {err}", file=sys.stderr)
        return 2
    print(f"similarity {similarity:.4f} threshold {embedder.threshold:.4f} "
          f"{'SAME person' if same else 'DIFFERENT people'}")
    if args.show:
        print(f"wrote {args.show}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
