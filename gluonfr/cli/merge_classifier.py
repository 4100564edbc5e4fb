"""Assemble the class centres a Partial FC run stored in slices into one (C, D) matrix.

    gluonfr-merge-classifier runs/glint360k --out centres.npy
    gluonfr-merge-classifier runs/glint360k/iresnet100-20000.json --out centres.npy

Every worker's slice of the checkpoint (``-head.params`` and its ``.rank<r>`` siblings) is
read; the slices must tile ``[0, C)`` exactly (a missing or overlapping one is refused,
naming the file). The matrix is written with ``numpy.save``, float32, rows in class order.
"""
import sys

from gluonfr.cli import command_parser, exits_on_bad_input
from gluonfr.engine.checkpoint import merge_classifier
from gluonfr.utils.fileio import atomic_open

import numpy as np


@exits_on_bad_input("gluonfr-merge-classifier")
def main(argv=None):
    """Merge and write the matrix; return the exit status."""
    p = command_parser("gluonfr-merge-classifier", __doc__)
    p.add_argument("source", nargs="+", help="a run folder, a checkpoint .json / -head.params, "
                                             "or the classifier files")
    p.add_argument("--out", required=True, help="the .npy file to write")
    args = p.parse_args(argv)
    source = args.source[0] if len(args.source) == 1 else args.source
    weight = merge_classifier(source)
    with atomic_open(args.out, "wb") as f:
        np.save(f, weight)
    print(f"wrote {args.out}: {weight.shape[0]} classes x {weight.shape[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
