"""The installed ``gluonfr-import`` command (gluonfr.cli.import_), run from a checkout.

Every option and an example: ``python scripts/import_model.py --help``.
"""
import sys

from gluonfr.cli.import_ import main

if __name__ == "__main__":
    sys.exit(main())
