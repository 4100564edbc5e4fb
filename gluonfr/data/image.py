"""Images in and out: the one reader (path, encoded bytes or array -> HWC uint8) and the codecs.

Every part of gluonfr that takes an image from the outside (the record reader and loader, the
``.bin`` reader and writer, ``pack_rec``, :class:`gluonfr.FaceEmbedder`, the console scripts)
decodes it here, so a bad image gives the same clear error wherever it comes in.
"""
import os

import cv2
import numpy as np

from ._io import DataFormatError

__all__ = ["COLORS", "decode_image", "encode_jpeg", "read_image"]

#: channel orders: ``'rgb'`` (gluonfr's networks, matplotlib, PIL) or ``'bgr'`` (OpenCV)
COLORS = ("rgb", "bgr")


def _check_color(color):
    if color not in COLORS:
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")


def decode_image(buf, where, color="rgb"):
    """Decode encoded image bytes (JPEG, PNG, ... anything OpenCV reads) to HWC uint8.

    Parameters
    ----------
    buf : bytes, bytearray, memoryview or 1-d uint8 numpy array
    where : str
        Names the source in the error (a file, a record key, an image index).
    color : {'rgb', 'bgr'}
        Channel order of the result.

    Raises
    ------
    DataFormatError
        (a ``ValueError``) naming ``where`` when the bytes are not a decodable image.
    """
    _check_color(color)
    arr = buf if isinstance(buf, np.ndarray) else np.frombuffer(buf, dtype=np.uint8)
    img = cv2.imdecode(arr, cv2.IMREAD_COLOR) if arr.size else None
    if img is None:
        raise DataFormatError(f"{where}: not a readable image: cannot decode the image bytes "
                              f"({arr.size} bytes; not a valid JPEG/PNG)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if color == "rgb" else img


def encode_jpeg(image_bgr, quality=95):
    """JPEG-encode an HWC uint8 BGR image (cv2 order, as insightface packs) to bytes."""
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cv2 could not JPEG-encode an image of shape {image_bgr.shape}")
    return buf.tobytes()


def read_image(source, color="rgb", where=None):
    """An image as HWC uint8 with 3 channels, from a file, encoded bytes or an array.

    Parameters
    ----------
    source : str, os.PathLike, bytes, bytearray, numpy.ndarray or mxnet NDArray
        A file path or encoded bytes are decoded to ``color`` order. An (H, W, 3) uint8 array
        is taken to be in ``color`` order already and returned as a contiguous numpy array
        (it is validated, not converted).
    color : {'rgb', 'bgr'}
        Channel order of the result.
    where : str, optional
        Names the source in errors (default: the path, or "image bytes" / "image array").

    Returns
    -------
    numpy.ndarray
        (H, W, 3) uint8.

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    DataFormatError
        (a ``ValueError``) The bytes or the file's content are not a decodable image, or the
        array is not HWC uint8 with 3 channels.
    """
    _check_color(color)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{where or path}: no such image file")
        with open(path, "rb") as f:
            data = f.read()
        return decode_image(data, where or path, color)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(source, where or "image bytes", color)
    arr = source.asnumpy() if hasattr(source, "asnumpy") else np.asarray(source)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise DataFormatError(f"{where or 'image array'}: expected a path, encoded bytes or an "
                              f"HWC uint8 array with 3 channels; got dtype {arr.dtype} and "
                              f"shape {arr.shape}")
    return np.ascontiguousarray(arr)
