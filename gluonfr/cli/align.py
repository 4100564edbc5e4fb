"""Align a tree of raw photos (one sub-folder per identity) into 112x112 arcface crops.

    gluonfr-align casia-raw/ casia-112/ --workers 2
    gluonfr-pack-rec casia-112/ faces_casia/          # then pack the aligned tree

Each photo's most prominent face (largest box) is detected, aligned with ``norm_crop`` and
written to ``DST/<identity>/<stem>.jpg``; ``DST/landmarks.json`` holds the 5 points in the
source photos' pixels and ``DST/report.txt`` / ``report.json`` list the photos without a face,
the unreadable ones and those with several faces (which one was kept and why). Run the same
command again to resume an interrupted run: finished photos are skipped.
"""
import sys

from gluonfr.cli import command_parser

__all__ = ["main"]


def main(argv=None):
    """Align the tree; return the exit status (0 also when some photos had no face)."""
    p = command_parser("gluonfr-align", __doc__)
    p.add_argument("src", help="folder of identity sub-folders of raw photos")
    p.add_argument("dst", help="output folder of aligned crops (resumed if it exists)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (0: this one)")
    p.add_argument("--size", type=int, default=112, help="side of the aligned crops")
    p.add_argument("--keep", choices=("largest", "score"), default="largest",
                   help="face kept when a photo has several (default: %(default)s box)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of the crops")
    p.add_argument("--detector", metavar="MODEL.onnx",
                   help="YuNet model file (default: the model store's YuNet 2023mar)")
    p.add_argument("--min-face", type=int, default=20, help="smallest face side in pixels")
    p.add_argument("--score-threshold", type=float, default=0.6, help="detector confidence")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)

    from gluonfr.detect import FaceDetector
    from gluonfr.detect.folder import align_folder

    try:
        detector = FaceDetector(args.detector, min_size=args.min_face,
                                score_threshold=args.score_threshold)
        report = align_folder(args.src, args.dst, detector, num_workers=args.workers,
                              size=args.size, rule=args.keep, quality=args.quality,
                              progress=not args.quiet)
    except (OSError, ValueError) as err:
        print(f"gluonfr-align: error: {err}", file=sys.stderr)
        return 2
    print(f"aligned {report['aligned']} of {report['total']} photos into {args.dst} "
          f"({report['resumed']} done by an earlier run); no face: {len(report['no_face'])}, "
          f"unreadable: {len(report['unreadable'])}, several faces: "
          f"{len(report['several_faces'])} (see {report['report']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
