"""The installed ``gluonfr-publish`` command (gluonfr.cli.publish), run from a checkout.

Every option and an example: ``python scripts/publish_model.py --help``.
"""
import sys

from gluonfr.cli.publish import main

if __name__ == "__main__":
    sys.exit(main())
