"""The installed ``gluonfr-align`` command (gluonfr.cli.align), run from a checkout.

Every option and an example: ``python scripts/align.py --help``.
"""
import sys

from gluonfr.cli.align import main

if __name__ == "__main__":
    sys.exit(main())
