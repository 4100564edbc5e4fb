"""insightface verification ``.bin`` files: ``pickle((bins, issame_list))``.

``bins`` holds 2P encoded images (pair i is ``bins[2i], bins[2i+1]``), ``issame_list`` P bools.
The published files (lfw, cfp_fp, agedb_30, ...) were pickled under Python 2, so their images
are py2 ``str``; newer packs hold ``bytes`` or numpy uint8 arrays from ``cv2.imencode``.

A ``.bin`` is usually downloaded from a file-sharing link, and ``pickle.load`` on such a file
runs whatever callables it names. :func:`load_bin` therefore unpickles through
:class:`SafeUnpickler`, which resolves only the handful of globals that numpy arrays and
Python 2 byte strings need and refuses every other one before anything is called.
"""
import builtins
import io
import os
import pickle

import numpy as np
from tqdm import tqdm

from ..utils.fileio import atomic_open
from ._io import DataFormatError
from .image import decode_image, encode_jpeg

__all__ = ["SafeUnpickler", "safe_load_pickle", "load_bin", "pack_bin"]


def _latin1_encode(text, encoding="latin1"):
    # protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, 'latin1')
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with codec {encoding!r}")
    return text.encode("latin1")


def _allowed_globals():
    allowed = {("_codecs", "encode"): _latin1_encode}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = np.core.multiarray._reconstruct
        allowed[(mod, "scalar")] = np.core.multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        # protocol-5 arrays: frombuffer + reshape of the pickled bytes
        allowed[(mod, "_frombuffer")] = np.core.numeric._frombuffer
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    # constructors of plain values only: calling them with any argument runs no user code
    for name in ("bool", "list", "tuple", "bytes", "bytearray", "str", "int", "float"):
        allowed[("builtins", name)] = allowed[("__builtin__", name)] = getattr(builtins, name)
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only plain containers, bytes/str, bools and numpy arrays.

    Any other global (``os.system``, ``builtins.eval``, a class with a malicious
    ``__reduce__``...) raises :class:`pickle.UnpicklingError` before it can be called.
    """

    _ALLOWED = _allowed_globals()

    def __init__(self, file, source="<pickle>", **kwargs):
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module, name):
        obj = self._ALLOWED.get((module, name))
        if obj is None:
            raise pickle.UnpicklingError(
                f"{self.source}: refusing to load global '{module}.{name}'; a verification "
                ".bin may contain only lists/tuples of bytes, str, bools and numpy arrays "
                "(a pickle that names other callables could run code)")
        return obj

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"{self.source}: persistent ids are not allowed")


def safe_load_pickle(path):
    """Unpickle ``path`` with :class:`SafeUnpickler` (Python 2 ``str`` read as latin1)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read ({e})") from e
    try:
        # latin1 maps each py2 str byte to one code point, so .encode('latin1') restores it
        return SafeUnpickler(io.BytesIO(data), source=path, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        msg = str(e)
        raise DataFormatError(msg if path in msg else f"{path}: {msg}") from e
    except Exception as e:  # noqa: BLE001  (truncated or not a pickle at all)
        raise DataFormatError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from e


def _element_bytes(item, path, i):
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, str):
        try:
            return item.encode("latin1")
        except UnicodeEncodeError:
            raise DataFormatError(f"{path}: image {i} is a text string, not image bytes") from None
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    raise DataFormatError(f"{path}: image {i} has type {type(item).__name__}; expected bytes, "
                          "str or a uint8 numpy array of encoded image data")


def load_bin(path, image_size=(112, 112), strict=False):
    """Load an insightface verification ``.bin``.

    Parameters
    ----------
    path : str
        The ``.bin`` file (e.g. ``lfw.bin``).
    image_size : (int, int)
        (height, width) of the returned images; images of another size are resized (bilinear)
        and images already this size are left untouched.
    strict : bool
        Treat the JPEG decoder's corrupt-data warnings as errors (such images decode to
        partly wrong pixels).

    Returns
    -------
    images : mx.nd.NDArray
        (2P, H, W, 3) uint8 RGB, in file order: pair i is rows 2i and 2i+1.
    issame : numpy.ndarray
        (P,) bool.

    Raises
    ------
    DataFormatError
        If the file is not a ``(bins, issame_list)`` pickle, the counts disagree, an image
        cannot be decoded, or the pickle names anything beyond plain data.
    """
    import cv2
    import mxnet as mx

    path = os.fspath(path)
    obj = safe_load_pickle(path)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise DataFormatError(f"{path}: expected a pickled (bins, issame_list) pair, got "
                              f"{type(obj).__name__}")
    bins, issame = obj
    if not isinstance(bins, (list, tuple)):
        raise DataFormatError(f"{path}: bins must be a list of encoded images, got "
                              f"{type(bins).__name__}")
    try:
        issame = np.asarray(issame)
    except Exception as e:  # noqa: BLE001
        raise DataFormatError(f"{path}: issame_list is not a list of bools ({e})") from e
    if issame.ndim == 1 and not len(issame) and not len(bins):
        raise DataFormatError(f"{path}: the file holds no pairs")
    if issame.ndim != 1 or issame.dtype.kind not in "biu":
        raise DataFormatError(f"{path}: issame_list must be a flat list of bools, got dtype "
                              f"{issame.dtype} and shape {issame.shape}")
    if len(bins) % 2:
        raise DataFormatError(f"{path}: {len(bins)} images is an odd number; images come in "
                              "pairs")
    if len(bins) != 2 * len(issame):
        raise DataFormatError(f"{path}: {len(bins)} images make {len(bins) // 2} pairs but "
                              f"issame_list has {len(issame)} entries")
    h, w = (int(x) for x in image_size)
    out = np.empty((len(bins), h, w, 3), dtype=np.uint8)
    for i, item in enumerate(tqdm(bins, desc=f"loading {os.path.basename(path)}", unit="img",
                                  disable=len(bins) < 2000, leave=False)):
        img = decode_image(_element_bytes(item, path, i), f"{path} image {i} (pair {i // 2})",
                           "rgb", strict)
        if img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        out[i] = img
    return mx.nd.from_numpy(out, zero_copy=True), issame.astype(bool)


def _encode_pair_image(image, quality, which):
    if isinstance(image, (str, os.PathLike)):
        try:
            with open(image, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ValueError(f"pack_bin: cannot read {which} image {os.fspath(image)!r} ({e})") \
                from e
        decode_image(data, f"pack_bin: {which} image {os.fspath(image)!r}", "bgr")
        return data  # stored as is, like insightface's lfw2pack
    if isinstance(image, (bytes, bytearray)):
        decode_image(bytes(image), f"pack_bin: {which} image (encoded bytes)", "bgr")
        return bytes(image)
    arr = image.asnumpy() if hasattr(image, "asnumpy") else np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"pack_bin: {which} image must be a path, encoded bytes or an HWC uint8 "
                         f"RGB array; got dtype {arr.dtype} and shape {arr.shape}")
    return encode_jpeg(np.ascontiguousarray(arr[:, :, ::-1]), quality)


def pack_bin(pairs, out_path, quality=95):
    """Write a verification ``.bin`` that :func:`load_bin` and insightface read.

    Parameters
    ----------
    pairs : iterable of (image_a, image_b, issame)
        Images as file paths (their bytes are stored unchanged), encoded image bytes, or HWC
        uint8 RGB arrays (JPEG-encoded at ``quality``).
    out_path : str
        Destination; written to a temporary file beside it and renamed when complete.
    quality : int
        JPEG quality for array images.

    Returns
    -------
    int
        Number of pairs written.
    """
    out_path = os.fspath(out_path)
    bins, issame = [], []
    for k, pair in enumerate(tqdm(pairs, desc=f"packing {os.path.basename(out_path)}",
                                  unit="pair", leave=False)):
        try:
            a, b, same = pair
        except (TypeError, ValueError):
            raise ValueError(f"pack_bin: pair {k} must be (image_a, image_b, issame)") from None
        bins.append(_encode_pair_image(a, quality, f"pair {k} first"))
        bins.append(_encode_pair_image(b, quality, f"pair {k} second"))
        issame.append(bool(same))
    if not issame:
        raise ValueError(f"pack_bin: no pairs given; {out_path} not written")
    with atomic_open(out_path, "wb") as f:
        pickle.dump((bins, issame), f, protocol=4)
    return len(issame)
