"""Pack a folder of identity sub-folders into insightface's train.rec / train.idx / property.

    gluonfr-pack-rec faces/ out/ [--landmarks lmk.json] [--quality 95] [--workers 2]

With a landmark file (JSON ``{"id/img.jpg": [[x, y] x 5]}`` or text lines ``id/img.jpg x1
y1 ... x5 y5``) every image is aligned onto the arcface template on the fly; without one,
112x112 images are taken as aligned crops and other photos are aligned with the face detector
(most prominent face; photos without a face are skipped; ``--no-detect`` makes them an
error). For big raw sets ``gluonfr-align`` first is resumable. Unreadable images are skipped
and counted (``--strict`` stops at the first one instead); nothing is written unless packing
succeeds.
"""
import sys

from gluonfr.cli import command_parser, exits_on_bad_input
from gluonfr.data import pack_rec


@exits_on_bad_input("gluonfr-pack-rec")
def main(argv=None):
    """Pack the folder; return the exit status."""
    p = command_parser("gluonfr-pack-rec", __doc__)
    p.add_argument("image_folder", help="folder with one sub-folder of images per identity")
    p.add_argument("out_dir", help="where train.rec, train.idx and property are written")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (insightface: 95)")
    p.add_argument("--landmarks", help="5-point landmark file: align the images on the fly")
    p.add_argument("--size", type=int, default=112, help="side of the stored crops")
    p.add_argument("--no-header", action="store_true",
                   help="write a headerless rec (no key-0 header or identity records)")
    p.add_argument("--array-labels", action="store_true",
                   help="store labels as [label, 0] arrays like the old face2rec2 packs")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unreadable image instead of skipping it")
    p.add_argument("--workers", type=int, default=0, help="parallel decode/encode processes")
    p.add_argument("--no-detect", action="store_true",
                   help="never run the face detector: every image must be an aligned crop")
    p.add_argument("--detector", metavar="MODEL.onnx",
                   help="YuNet model file (default: the model store's YuNet 2023mar)")
    args = p.parse_args(argv)
    detector = None if args.no_detect else "auto"
    if args.detector and not args.no_detect:
        from gluonfr.detect import FaceDetector

        detector = FaceDetector(args.detector)
    info = pack_rec(args.image_folder, args.out_dir, quality=args.quality,
                    landmarks=args.landmarks, image_size=(args.size, args.size),
                    header=not args.no_header, array_labels=args.array_labels,
                    on_error="raise" if args.strict else "skip", num_workers=args.workers,
                    detector=detector)
    print(f"packed {info['num_images']} images of {info['num_classes']} identities into "
          f"{info['rec']} ({len(info['skipped'])} skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
