"""The installed ``gluonfr-launch-dist`` command (gluonfr.cli.launch_dist), run from a checkout.

Every option and an example: ``python scripts/launch_dist.py --help``.
"""
import sys

from gluonfr.cli.launch_dist import main

if __name__ == "__main__":
    sys.exit(main())
