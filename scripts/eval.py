"""The installed ``gluonfr-eval`` command (gluonfr.cli.eval), run from a checkout.

Every option and an example: ``python scripts/eval.py --help``.
"""
import sys

from gluonfr.cli.eval import main

if __name__ == "__main__":
    sys.exit(main())
