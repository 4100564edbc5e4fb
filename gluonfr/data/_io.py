"""Small file helpers shared by the readers and writers: errors, atomic writes, image codecs."""
import contextlib
import os
import tempfile

import cv2
import numpy as np

__all__ = ["DataFormatError", "atomic_outputs", "decode_bgr", "decode_rgb", "encode_jpeg",
           "read_image_bgr"]


class DataFormatError(ValueError):
    """A data file is missing, truncated or malformed; the message names the file and record."""


@contextlib.contextmanager
def atomic_outputs(*paths):
    """Yield temporary paths beside ``paths``; rename them into place only on success.

    Readers never see a half-written file: the temporaries live in the destination folder (so
    ``os.replace`` is an atomic rename) and are deleted if the body raises.
    """
    temps = []
    try:
        for path in paths:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                                       dir=folder)
            os.close(fd)
            temps.append(tmp)
        yield temps
        for tmp, path in zip(temps, paths):
            os.replace(tmp, path)
        temps = []
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.remove(tmp)


def decode_bgr(buf, where):
    """Decode encoded image bytes to HWC uint8 BGR; ``where`` names the source in errors."""
    arr = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
    img = cv2.imdecode(arr, cv2.IMREAD_COLOR) if arr.size else None
    if img is None:
        raise DataFormatError(f"{where}: cannot decode the image bytes ({arr.size} bytes; "
                              "not a valid JPEG/PNG)")
    return img


def decode_rgb(buf, where):
    """Decode encoded image bytes to HWC uint8 RGB."""
    return cv2.cvtColor(decode_bgr(buf, where), cv2.COLOR_BGR2RGB)


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
