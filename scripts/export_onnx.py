"""The installed ``gluonfr-export-onnx`` command (gluonfr.cli.export_onnx), run from a checkout.

Every option and an example: ``python scripts/export_onnx.py --help``.
"""
import sys

from gluonfr.cli.export_onnx import main

if __name__ == "__main__":
    sys.exit(main())
