"""The data error type, and transitional names of helpers that moved.

Image decoding and encoding live in :mod:`gluonfr.data.image`, atomic writes in
:mod:`gluonfr.utils.fileio`.
"""

__all__ = ["DataFormatError"]


class DataFormatError(ValueError):
    """A data file is missing, truncated or malformed; the message names the file and record."""


# Transitional names for branches written before gluonfr.data.image and gluonfr.utils.fileio
# existed: thin forwards, removed once nothing imports them. New code imports the targets.
from ..utils.fileio import atomic_paths as atomic_outputs  # noqa: E402,F401
from .image import decode_image, encode_jpeg, read_image  # noqa: E402,F401


def decode_bgr(buf, where, strict=False):
    """Transitional: ``decode_image(buf, where, "bgr", strict)``."""
    return decode_image(buf, where, "bgr", strict)


def decode_rgb(buf, where, strict=False):
    """Transitional: ``decode_image(buf, where, "rgb", strict)``."""
    return decode_image(buf, where, "rgb", strict)


def read_image_bgr(path):
    """Transitional: ``read_image(path, "bgr")``, or ``None`` when it cannot be read."""
    try:
        return read_image(path, "bgr")
    except (OSError, DataFormatError):
        return None
