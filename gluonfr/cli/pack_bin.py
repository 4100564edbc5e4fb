"""Write a verification .bin (insightface format) from a pairs list.

    gluonfr-pack-bin pairs.txt out.bin --image-root photos/ [--landmarks lmk.json]

``pairs.txt`` has one pair per line, ``image_a image_b same`` with same = 1/0 (or
true/false); ``#`` starts a comment. Paths are relative to ``--image-root``. Without
``--landmarks`` the image files are stored as they are (they should be aligned 112x112
crops); with it, each image is aligned onto the arcface template with ``norm_crop`` first.
"""
import os
import sys

from gluonfr.cli import command_parser
from gluonfr.data import pack_bin
from gluonfr.data.pack import aligned_rgb, read_landmarks, read_pairs

__all__ = ["main"]


def main(argv=None):
    """Write the .bin; return the exit status."""
    p = command_parser("gluonfr-pack-bin", __doc__)
    p.add_argument("pairs", help="pairs file: 'image_a image_b 1|0' per line")
    p.add_argument("out", help="output .bin")
    p.add_argument("--image-root", default=".", help="folder the pair paths are relative to")
    p.add_argument("--landmarks", help="5-point landmark file; align each image with norm_crop")
    p.add_argument("--size", type=int, default=112, help="crop side when aligning")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of aligned crops")
    args = p.parse_args(argv)
    table = read_landmarks(args.landmarks) if args.landmarks else None

    def image(name):
        path = os.path.join(args.image_root, name)
        if table is None:
            return path
        return aligned_rgb(path, table, args.image_root, args.size)  # pack_bin takes RGB

    pairs = read_pairs(args.pairs)
    n = pack_bin(((image(a), image(b), same) for a, b, same in pairs), args.out,
                 quality=args.quality)
    print(f"wrote {n} pairs ({sum(s for *_, s in pairs)} same) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
