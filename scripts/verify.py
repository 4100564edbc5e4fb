"""The installed ``gluonfr-verify`` command (gluonfr.cli.verify), run from a checkout.

Every option and an example: ``python scripts/verify.py --help``.
"""
import sys

from gluonfr.cli.verify import main

if __name__ == "__main__":
    sys.exit(main())
