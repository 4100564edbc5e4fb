"""Train a face-embedding network (MobileFaceNet / IR-ResNet + ArcFace / CosFace / ...).

Single machine, one or more devices::

    gluonfr-train --model mobilefacenet --loss arcface --data-dir data/faces_emore \\
        --gpus 0,1,2,3 --batch-size 128 --lr 0.1 --lr-steps 100000,160000 --max-iters 180000 \\
        --val-targets lfw,cfp_fp,agedb_30 --save-dir runs/mbf-arcface

Resume the latest checkpoint of a run with ``--resume`` (same flags); several machines with
``gluonfr-launch-dist`` and ``--kvstore dist_sync``. The recipes in ``scripts/*.sh`` fix
the hyperparameters of the published models. Every flag: ``--help``.
"""
import sys

from gluonfr.cli import command_parser
from gluonfr.engine import NonFiniteLossError, add_arguments, config_from_args, train

__all__ = ["main"]


def main(argv=None):
    """Parse the training flags, train, and return the exit status (1: the loss diverged,
    2: bad input such as a refused --save-dir)."""
    parser = command_parser("gluonfr-train", __doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as err:
        parser.error(str(err))
    try:
        summary = train(cfg)
    except NonFiniteLossError as err:
        print(f"gluonfr-train: error: {err}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as err:
        # a refused save dir, an unreadable checkpoint or data file: the message says which
        print(f"gluonfr-train: error: {err}", file=sys.stderr)
        return 2
    print(f"finished {summary['iterations']} iterations; last checkpoint {summary['checkpoint']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
