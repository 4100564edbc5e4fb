"""The data error type.

Image decoding and encoding live in :mod:`gluonfr.data.image`, atomic writes in
:mod:`gluonfr.utils.fileio`.
"""

__all__ = ["DataFormatError"]


class DataFormatError(ValueError):
    """A data file is missing, truncated or malformed; the message names the file and record."""
