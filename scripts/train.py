"""The installed ``gluonfr-train`` command (gluonfr.cli.train), run from a checkout.

Every option and an example: ``python scripts/train.py --help``.
"""
import sys

from gluonfr.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
