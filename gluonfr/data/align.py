"""Five-point face alignment onto the arcface template (insightface ``norm_crop``).

The 5 points are, as seen in the image: left eye, right eye, nose tip, left mouth corner,
right mouth corner. A least-squares similarity transform (rotation, uniform scale,
translation; Umeyama 1991) maps them onto the template, and ``cv2.warpAffine`` resamples the
crop. Every insightface training and verification set was aligned this way, so custom data
must be too: a crop that is merely "a face, resized" loses several points of accuracy.
"""
import json
import os

import cv2
import numpy as np

from ._io import DataFormatError

__all__ = ["ARCFACE_TEMPLATE", "template", "umeyama", "estimate_norm", "transform_points",
           "norm_crop", "read_landmarks", "lookup_landmarks"]

#: (x, y) of the 5 points in a 112x112 arcface crop (the 96x112 template shifted by x+8)
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963],
                             [73.5318, 51.5014],
                             [56.0252, 71.7366],
                             [41.5493, 92.3655],
                             [70.7299, 92.2041]], dtype=np.float64)


def template(size=112):
    """The arcface template for a ``size`` x ``size`` crop, as insightface scales it.

    Multiples of 112 scale the 112 template; multiples of 128 scale it by ``size/128`` and
    shift x by ``8*size/128`` (the face keeps the 112-crop proportions inside a wider crop).
    """
    size = int(size)
    if size <= 0:
        raise ValueError(f"crop size must be positive, got {size}")
    if size % 112 == 0:
        return ARCFACE_TEMPLATE * (size / 112.0)
    if size % 128 == 0:
        ratio = size / 128.0
        return ARCFACE_TEMPLATE * ratio + np.array([8.0 * ratio, 0.0])
    # any other size: scale uniformly (insightface asserts here; scaling is the natural answer)
    return ARCFACE_TEMPLATE * (size / 112.0)


def umeyama(src, dst):
    """Least-squares similarity transform taking points ``src`` onto ``dst``.

    Parameters
    ----------
    src, dst : array-like, shape (N, 2)
        Corresponding points, N >= 2.

    Returns
    -------
    numpy.ndarray, shape (2, 3)
        ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``, minimising the sum of squared
        residuals over rotations (no reflection), uniform scales and translations.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"umeyama needs two (N, 2) point arrays with N >= 2, got shapes "
                         f"{src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    src_var = (src_c ** 2).sum() / len(src)
    if src_var <= 0:
        raise ValueError("umeyama: the source points all coincide; no transform is defined")
    cov = dst_c.T @ src_c / len(src)
    u, d, vt = np.linalg.svd(cov)
    # force a proper rotation: flip the weakest axis when the best orthogonal map reflects
    s = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[1] = -1.0
    rot = u @ np.diag(s) @ vt
    scale = (d * s).sum() / src_var
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = dst_mean - scale * rot @ src_mean
    return m


def estimate_norm(landmarks5, size=112):
    """The 2x3 similarity matrix taking the 5 image landmarks onto the crop template."""
    lmk = _check_landmarks(landmarks5)
    return umeyama(lmk, template(size))


def transform_points(matrix, points):
    """Apply a 2x3 affine ``matrix`` to (N, 2) ``points``."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def norm_crop(image, landmarks5, size=112):
    """Align a face onto the arcface template, as insightface's ``face_align.norm_crop``.

    Parameters
    ----------
    image : numpy.ndarray
        HWC uint8 image (any channel order: the output keeps it) or HW grayscale.
    landmarks5 : array-like, shape (5, 2)
        (x, y) pixel coordinates of left eye, right eye, nose tip, left and right mouth corner,
        as seen in the image.
    size : int
        Side of the square crop (112 for every insightface model).

    Returns
    -------
    numpy.ndarray
        ``size`` x ``size`` uint8 crop (bilinear, black outside the image).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"norm_crop expects an HWC or HW uint8 image, got dtype {image.dtype} "
                         f"and shape {image.shape}")
    m = estimate_norm(landmarks5, size)
    return cv2.warpAffine(image, m, (int(size), int(size)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _check_landmarks(landmarks5):
    lmk = np.asarray(landmarks5, dtype=np.float64)
    if lmk.shape != (5, 2):
        # a flat 10-vector is ambiguous (x1,y1,x2,... or MTCNN's x1..x5,y1..y5): refuse it
        raise ValueError(f"expected landmarks of shape (5, 2) as (x, y) rows, got shape "
                         f"{lmk.shape}")
    if not np.isfinite(lmk).all():
        raise ValueError("landmarks contain NaN or infinity")
    return lmk


# -- landmark tables ------------------------------------------------------------------------
def _norm_key(path):
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def read_landmarks(path):
    """Read a 5-point landmark file into ``{relative image path: (5, 2) array}``.

    Accepted formats: JSON ``{"id/img.jpg": [[x, y] x 5], ...}`` (a value may also be a dict
    with a ``"landmarks5"`` entry, as in ``shared/data/real-faces/landmarks.json``), or text
    lines ``id/img.jpg x1 y1 x2 y2 ... x5 y5``. Points are left eye, right eye, nose, left and
    right mouth corner as seen in the image.
    """
    path = os.fspath(path)
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read the landmark file ({e})") from e
    table = {}
    if text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{path}: invalid JSON ({e})") from e
        for key, value in raw.items():
            if isinstance(value, dict):
                value = value.get("landmarks5")
            table[_norm_key(key)] = _as_points(value, f"{path} entry {key!r}")
        return table
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 11:
            raise DataFormatError(f"{path}:{lineno}: expected 'image x1 y1 ... x5 y5' (11 fields), "
                                  f"got {len(fields)}")
        try:
            pts = [float(x) for x in fields[1:]]
        except ValueError:
            raise DataFormatError(f"{path}:{lineno}: landmark coordinates must be numbers") \
                from None
        table[_norm_key(fields[0])] = _as_points(pts, f"{path}:{lineno}")
    return table


def _as_points(value, where):
    try:
        pts = np.asarray(value, dtype=np.float64).reshape(5, 2)
    except (TypeError, ValueError):
        raise DataFormatError(f"{where}: expected 5 (x, y) landmarks") from None
    if not np.isfinite(pts).all():
        raise DataFormatError(f"{where}: landmarks contain NaN or infinity")
    return pts


def lookup_landmarks(table, path, root=None):
    """The landmarks of image ``path`` in a landmark table, or ``None`` when it has none.

    The one lookup rule of gluonfr (``pack_rec``, ``gluonfr-pack-bin``, ``gluonfr-verify``,
    the examples), tried in this order:

    1. the path as given (``\\`` read as ``/``, leading ``./`` dropped);
    2. with ``root``: the path relative to ``root`` (the image folder the table describes);
    3. the file name alone.

    Parameters
    ----------
    table : dict
        From :func:`read_landmarks`, or ``{key: (5, 2) points or {"landmarks5": points}}``.
    path : str or os.PathLike
    root : str or os.PathLike, optional

    Returns
    -------
    numpy.ndarray or None
        (5, 2) float64.

    Raises
    ------
    DataFormatError
        The entry found is not 5 finite (x, y) points.
    """
    path = os.fspath(path)
    keys = [_norm_key(path)]
    if root is not None:
        keys.append(_norm_key(os.path.relpath(path, os.fspath(root))))
    keys.append(os.path.basename(path))
    for key in keys:
        if key in table:
            value = table[key]
            if isinstance(value, dict):
                value = value.get("landmarks5")
            return _as_points(value, f"landmarks of {key!r}")
    return None
