"""Images in and out: the one reader (path, encoded bytes or array -> HWC uint8) and the codecs.

Every part of gluonfr that takes an image from the outside (the record reader and loader, the
``.bin`` reader and writer, ``pack_rec``, :class:`gluonfr.FaceEmbedder`, the console scripts)
decodes it here, so a bad image gives the same clear error wherever it comes in.
"""
import os
import sys
import tempfile
import threading

import cv2
import numpy as np

from ._io import DataFormatError

__all__ = ["COLORS", "decode_image", "encode_jpeg", "read_image"]

#: channel orders: ``'rgb'`` (gluonfr's networks, matplotlib, PIL) or ``'bgr'`` (OpenCV)
COLORS = ("rgb", "bgr")


def _check_color(color):
    if color not in COLORS:
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")


class _StderrCapture:
    """What C libraries print on file descriptor 2 during a call, per process.

    libjpeg reports damaged entropy-coded data ("Corrupt JPEG data: 12 extraneous bytes
    before marker 0xd9", "Premature end of JPEG file") only as a warning printed to stderr,
    and OpenCV returns the wrongly decoded pixels as a success. The only reliable signal is
    that text, so strict decoding points descriptor 2 at a private memory file for the
    duration of the call. The redirection is process-wide: another thread printing to stderr
    at that moment would be counted as a decoder warning (the lock only orders decoders).
    """

    def __init__(self):
        self._pid = None
        self._fd = None
        self._lock = threading.Lock()

    def _file(self):
        if self._pid != os.getpid():  # a forked worker gets its own file
            if hasattr(os, "memfd_create"):
                self._fd = os.memfd_create("gluonfr-decoder-messages")
            else:  # pragma: no cover  (macOS, Windows)
                self._keep = tempfile.TemporaryFile()
                self._fd = self._keep.fileno()
            self._pid = os.getpid()
        return self._fd

    def call(self, fn, *args):
        """``(fn(*args), text printed on fd 2 meanwhile)``."""
        with self._lock:
            fd = self._file()
            try:
                sys.stderr.flush()
            except (AttributeError, OSError, ValueError):
                pass
            saved = os.dup(2)
            try:
                os.dup2(fd, 2)
                try:
                    result = fn(*args)
                finally:
                    os.dup2(saved, 2)
            finally:
                os.close(saved)
            size = os.lseek(fd, 0, os.SEEK_END)
            text = ""
            if size:
                os.lseek(fd, 0, os.SEEK_SET)
                text = os.read(fd, min(size, 4096)).decode("utf-8", "replace").strip()
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
            return result, text


_STDERR = _StderrCapture()



def decode_image(buf, where, color="rgb", strict=False):
    """Decode encoded image bytes (JPEG, PNG, ... anything OpenCV reads) to HWC uint8.

    Parameters
    ----------
    buf : bytes, bytearray, memoryview or 1-d uint8 numpy array
    where : str
        Names the source in the error (a file, a record key, an image index).
    color : {'rgb', 'bgr'}
        Channel order of the result.
    strict : bool
        Also reject images the decoder only warns about (libjpeg's "Corrupt JPEG data",
        "Premature end of JPEG file"): their pixels are partly garbage. The warning text is
        captured instead of reaching stderr (see :class:`_StderrCapture`).

    Raises
    ------
    DataFormatError
        (a ``ValueError``) naming ``where`` when the bytes are not a decodable image (or,
        with ``strict``, decode only with a warning).
    """
    _check_color(color)
    arr = buf if isinstance(buf, np.ndarray) else np.frombuffer(buf, dtype=np.uint8)
    if not arr.size:
        img = None
    elif strict:
        img, warning = _STDERR.call(cv2.imdecode, arr, cv2.IMREAD_COLOR)
        if warning and img is not None:
            first = warning.splitlines()[0]
            raise DataFormatError(f"{where}: corrupt image data (libjpeg: {first}); the "
                                  "decoder would return partly wrong pixels")
    else:
        img = cv2.imdecode(arr, cv2.IMREAD_COLOR)
    if img is None:
        raise DataFormatError(f"{where}: cannot decode the image bytes ({arr.size} bytes; "
                              "not a valid JPEG/PNG)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if color == "rgb" else img


def encode_jpeg(image_bgr, quality=95):
    """JPEG-encode an HWC uint8 BGR image (cv2 order, as insightface packs) to bytes."""
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cv2 could not JPEG-encode an image of shape {image_bgr.shape}")
    return buf.tobytes()


def read_image(source, color="rgb", where=None, strict=False):
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
    strict : bool
        Reject JPEGs the decoder only warns about (see :func:`decode_image`).

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
        return decode_image(data, f"{where or path}: not a readable image", color, strict)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(source, where or "image bytes", color, strict)
    arr = source.asnumpy() if hasattr(source, "asnumpy") else np.asarray(source)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise DataFormatError(f"{where or 'image array'}: expected a path, encoded bytes or an "
                              f"HWC uint8 array with 3 channels; got dtype {arr.dtype} and "
                              f"shape {arr.shape}")
    return np.ascontiguousarray(arr)
