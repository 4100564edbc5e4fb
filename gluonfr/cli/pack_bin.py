"""Write a verification .bin (insightface format) from a protocol's pair list.

    gluonfr-pack-bin lfw/pairs.txt lfw.bin --detect              # LFW as downloaded
    gluonfr-pack-bin cfp-dataset/Protocol cfp_fp.bin --detect    # CFP (FP; --format cfp_ff)
    gluonfr-pack-bin calfw/pairs_CALFW.txt calfw.bin             # CALFW / CPLFW, aligned images
    gluonfr-pack-bin AgeDB/ agedb_30.bin --detect                # AgeDB-30 (.mat + images)
    gluonfr-pack-bin pairs.txt out.bin --image-root photos/ [--landmarks lmk.json]

The layout is detected (``--format`` forces one): LFW's ``pairs.txt`` (header ``10 300``),
CFP's ``Protocol/`` folder, CALFW / CPLFW ``pairs_*.txt``, AgeDB's
``04_FINAL_protocol_30_years.mat`` (or the folder holding it and ``03_Protocol_Images/``), or
plain ``image_a image_b 1|0`` lines (``#`` comments; paths relative to ``--image-root``).
Pairs keep the protocol's order.
Images are stored as they are (aligned 112x112 crops), aligned with ``norm_crop`` from a
``--landmarks`` file, or found and aligned by the face detector (``--detect``).
"""
import os
import sys

from gluonfr.cli import command_parser, exits_on_bad_input
from gluonfr.data import pack_bin
from gluonfr.data.align import read_landmarks
from gluonfr.data.image import read_image
from gluonfr.data.pack import aligned_rgb
from gluonfr.data.protocols import PROTOCOLS, read_protocol

__all__ = ["main"]


@exits_on_bad_input("gluonfr-pack-bin")
def main(argv=None):
    """Write the .bin; return the exit status."""
    p = command_parser("gluonfr-pack-bin", __doc__)
    p.add_argument("pairs", help="protocol file or folder (LFW pairs.txt, CFP Protocol/, "
                                 "pairs_CALFW.txt, AgeDB's .mat or folder, or 'image_a "
                                 "image_b 1|0' lines)")
    p.add_argument("out", help="output .bin")
    p.add_argument("--format", choices=("auto",) + PROTOCOLS, default="auto",
                   help="protocol layout (default: detected)")
    p.add_argument("--image-root", help="image folder (LFW: lfw/ beside pairs.txt; AgeDB: "
                                        "03_Protocol_Images/ beside the .mat; lists: paths "
                                        "as written)")
    p.add_argument("--landmarks", help="5-point landmark file; align each image with norm_crop")
    p.add_argument("--detect", action="store_true",
                   help="find the face with the detector and align it (largest face)")
    p.add_argument("--detector", metavar="MODEL.onnx", help="YuNet model file for --detect")
    p.add_argument("--size", type=int, default=112, help="crop side when aligning")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of aligned crops")
    args = p.parse_args(argv)
    if args.landmarks and args.detect:
        p.error("give --landmarks or --detect, not both")
    pairs, fmt = read_protocol(args.pairs, args.image_root,
                               None if args.format == "auto" else args.format)
    table = read_landmarks(args.landmarks) if args.landmarks else None
    detector = None
    if args.detect:
        from gluonfr.detect import FaceDetector, detect_and_align

        detector = FaceDetector(args.detector)
    root = args.image_root or os.path.dirname(os.path.abspath(args.pairs))

    def image(path):
        if table is not None:
            return aligned_rgb(path, table, root, args.size)  # pack_bin takes RGB
        if detector is not None:
            bgr = read_image(path, "bgr")  # names the file if missing or broken
            return detect_and_align(detector, bgr, path, args.size)[0][:, :, ::-1]
        return path

    n = pack_bin(((image(a), image(b), same) for a, b, same in pairs), args.out,
                 quality=args.quality)
    print(f"wrote {n} pairs ({sum(s for *_, s in pairs)} same) of {fmt} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
