"""Save contact sheets of a face dataset so a person can look at it.

    gluonfr-show-dataset DATA_DIR [--out sheet.png] [--bin DATA_DIR/synth_val.bin]
    gluonfr-show-dataset /tmp/synth --make-synthetic 40 20 200

``DATA_DIR`` holds train.rec / train.idx / property. The sheet has one row per identity.
With ``--bin`` a second sheet shows verification pairs (green bar = same person, red =
different). ``--make-synthetic IDS IMAGES PAIRS`` first writes the procedural face set there.
"""
import os
import sys

from gluonfr.cli import command_parser, exits_on_bad_input
from gluonfr.data import contact_sheet, load_bin
from gluonfr.data.preview import pairs_sheet
from gluonfr.data.synthetic import make_dataset


@exits_on_bad_input("gluonfr-show-dataset")
def main(argv=None):
    """Draw the sheets; return the exit status."""
    p = command_parser("gluonfr-show-dataset", __doc__)
    p.add_argument("data_dir")
    p.add_argument("--out", help="PNG path (default DATA_DIR/contact_sheet.png)")
    p.add_argument("--identities", type=int, default=8, help="rows")
    p.add_argument("--images", type=int, default=8, help="images per row")
    p.add_argument("--bin", help="also draw pairs of this verification .bin")
    p.add_argument("--pairs", type=int, default=16, help="pairs to draw from --bin")
    p.add_argument("--make-synthetic", nargs=3, type=int, metavar=("IDS", "IMAGES", "PAIRS"),
                   help="generate the procedural face dataset in DATA_DIR first")
    p.add_argument("--seed", type=int, default=0, help="seed for --make-synthetic")
    args = p.parse_args(argv)
    if args.make_synthetic:
        ids, per, pairs = args.make_synthetic
        info = make_dataset(args.data_dir, ids, per, pairs, seed=args.seed)
        args.bin = args.bin or info["bin"]
    out = args.out or os.path.join(args.data_dir, "contact_sheet.png")
    contact_sheet(args.data_dir, out, args.identities, args.images)
    print(f"wrote {out}")
    if args.bin:
        images, issame = load_bin(args.bin)
        pout = os.path.splitext(out)[0] + "_pairs.png"
        pairs_sheet(images, issame, pout, num_pairs=args.pairs)
        print(f"wrote {pout}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
