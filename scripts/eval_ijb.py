"""The installed ``gluonfr-eval-ijb`` command (gluonfr.cli.eval_ijb), run from a checkout.

Every option and an example: ``python scripts/eval_ijb.py --help``.
"""
import sys

from gluonfr.cli.eval_ijb import main

if __name__ == "__main__":
    sys.exit(main())
