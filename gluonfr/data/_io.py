"""Small file helpers shared by the readers and writers: errors and image codecs."""
import os
import sys
import tempfile
import threading

import cv2
import numpy as np

__all__ = ["DataFormatError", "decode_bgr", "decode_rgb", "encode_jpeg",
           "read_image_bgr"]


class DataFormatError(ValueError):
    """A data file is missing, truncated or malformed; the message names the file and record."""


# Transitional name for branches written before gluonfr.utils.fileio existed; new code
# imports atomic_paths / atomic_open from there. Removed once nothing uses it.
from ..utils.fileio import atomic_paths as atomic_outputs  # noqa: E402,F401


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


def decode_bgr(buf, where, strict=False):
    """Decode encoded image bytes to HWC uint8 BGR; ``where`` names the source in errors.

    Parameters
    ----------
    buf : bytes or numpy uint8 array
        The encoded image.
    where : str
        Names the file and record in errors.
    strict : bool
        Also reject images the decoder only warns about (libjpeg's "Corrupt JPEG data",
        "Premature end of JPEG file"): their pixels are partly garbage. The warning text is
        captured instead of reaching stderr (see :class:`_StderrCapture`).
    """
    arr = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
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
    return img


def decode_rgb(buf, where, strict=False):
    """Decode encoded image bytes to HWC uint8 RGB (``strict`` as in :func:`decode_bgr`)."""
    return cv2.cvtColor(decode_bgr(buf, where, strict), cv2.COLOR_BGR2RGB)


def encode_jpeg(image_bgr, quality=95):
    """JPEG-encode an HWC uint8 BGR image (cv2 order, as insightface packs) to bytes."""
    ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cv2 could not JPEG-encode an image of shape {image_bgr.shape}")
    return buf.tobytes()


def read_image_bgr(path):
    """Read an image file to HWC uint8 BGR, or ``None`` when it is missing or undecodable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if not data:
        return None
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
