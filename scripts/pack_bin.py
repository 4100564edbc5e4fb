"""The installed ``gluonfr-pack-bin`` command (gluonfr.cli.pack_bin), run from a checkout.

Every option and an example: ``python scripts/pack_bin.py --help``.
"""
import sys

from gluonfr.cli.pack_bin import main

if __name__ == "__main__":
    sys.exit(main())
