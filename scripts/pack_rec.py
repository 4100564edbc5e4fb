"""The installed ``gluonfr-pack-rec`` command (gluonfr.cli.pack_rec), run from a checkout.

Every option and an example: ``python scripts/pack_rec.py --help``.
"""
import sys

from gluonfr.cli.pack_rec import main

if __name__ == "__main__":
    sys.exit(main())
