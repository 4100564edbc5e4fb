"""The installed ``gluonfr-demo`` command (gluonfr.cli.demo), run from a checkout.

Every option and an example: ``python scripts/demo.py --help``.
"""
import sys

from gluonfr.cli.demo import main

if __name__ == "__main__":
    sys.exit(main())
