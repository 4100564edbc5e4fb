"""The installed ``gluonfr-show-dataset`` command (gluonfr.cli.show_dataset), run from a checkout.

Every option and an example: ``python scripts/show_dataset.py --help``.
"""
import sys

from gluonfr.cli.show_dataset import main

if __name__ == "__main__":
    sys.exit(main())
