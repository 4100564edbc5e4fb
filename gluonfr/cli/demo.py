"""``make demo``: generate procedural faces, train MobileFaceNet + ArcFace on the CPU for a few
minutes, and compare held-out-identity verification before and after training.

    gluonfr-demo                       # data in data/synthetic, outputs in runs/demo
    gluonfr-demo --iterations 1000     # train longer
"""
import os
import sys

from gluonfr.cli import command_parser
from gluonfr.engine.demo import DEMO_TRAIN, run_demo


def main(argv=None):
    """Run the demo; return the exit status."""
    p = command_parser("gluonfr-demo", __doc__)
    p.add_argument("--data-dir", default=os.path.join("data", "synthetic"),
                   help="procedural face set, generated when missing (default: %(default)s)")
    p.add_argument("--out-dir", default=os.path.join("runs", "demo"),
                   help="checkpoints, log, TensorBoard, ROC (default: %(default)s)")
    p.add_argument("--iterations", type=int, default=DEMO_TRAIN["max_iters"],
                   help="training iterations (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=DEMO_TRAIN["batch_size"],
                   help="default: %(default)s")
    p.add_argument("--ctx", default="cpu:0", help="devices (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    warmup = DEMO_TRAIN["loss_warmup_iters"] * args.iterations // DEMO_TRAIN["max_iters"]
    run_demo(data_dir=args.data_dir, out_dir=args.out_dir, ctx=args.ctx,
             progress=not args.no_progress, max_iters=args.iterations,
             batch_size=args.batch_size, loss_warmup_iters=warmup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
