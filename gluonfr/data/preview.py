"""Contact sheets: look at faces — a dataset's identities, verification pairs, compared crops.

:func:`contact_sheet` (identities x images), :func:`pairs_sheet` (pairs of a ``.bin``) and
:func:`pair_tile` / :func:`save_sheet` (two faces over a caption, e.g. what ``gluonfr-verify
--show`` compared and the error galleries of ``gluonfr-eval --gallery``).
"""
import os

import cv2
import numpy as np

from ..utils.fileio import atomic_open
from .record_dataset import FaceRecordDataset

__all__ = ["contact_sheet", "pairs_sheet", "pair_tile", "save_sheet"]


def _grid(rows, pad=2, background=255):
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    sheet = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), background,
                    np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            sheet[y:y + h, x:x + w] = img
    return sheet


def _save_png(sheet_rgb, out_path):
    """Write an RGB sheet atomically; the format follows the extension (PNG if unknown)."""
    out_path = os.fspath(out_path)
    ext = os.path.splitext(out_path)[1].lower()
    ext = ext if ext in (".png", ".jpg", ".jpeg", ".bmp", ".webp") else ".png"
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(sheet_rgb[:, :, ::-1]))
    if not ok:
        raise ValueError(f"cannot encode the image sheet for {out_path}")
    with atomic_open(out_path, "wb") as f:
        f.write(buf.tobytes())
    return out_path


def contact_sheet(dataset, out_path, num_identities=8, images_per_identity=8, labels=None):
    """Save a PNG grid: one row per identity, its first images left to right.

    Parameters
    ----------
    dataset : FaceRecordDataset or str
        A dataset or a record folder.
    out_path : str
        PNG file to write.
    num_identities, images_per_identity : int
        Grid size.
    labels : list of int, optional
        Which identities to show (default: the first ``num_identities``).

    Returns
    -------
    numpy.ndarray
        The sheet (HWC uint8 RGB), also written to ``out_path``.
    """
    ds = FaceRecordDataset(dataset) if isinstance(dataset, (str, os.PathLike)) else dataset
    groups = ds.identity_indices()
    chosen = list(labels) if labels is not None else sorted(groups)[:num_identities]
    rows = []
    for label in chosen:
        idx = groups.get(int(label), [])[:images_per_identity]
        if len(idx):
            rows.append([ds.decode(int(i))[0] for i in idx])
    if not rows:
        raise ValueError("contact_sheet: no images for the chosen identities")
    sheet = _grid(rows)
    _save_png(sheet, out_path)
    return sheet


def pairs_sheet(images, issame, out_path, num_pairs=16, per_row=4):
    """Save a PNG of verification pairs as :func:`~gluonfr.data.load_bin` returns them.

    ``per_row`` pairs per row; a green (same) or red (different) bar follows each pair.
    """
    arr = images.asnumpy() if hasattr(images, "asnumpy") else np.asarray(images)
    tiles = []
    for k in range(min(num_pairs, len(issame))):
        a, b = arr[2 * k], arr[2 * k + 1]
        bar = np.zeros((a.shape[0], 8, 3), np.uint8)
        bar[:] = (40, 200, 60) if issame[k] else (220, 40, 40)
        tiles.append(np.concatenate([a, b, bar], axis=1))
    rows = [tiles[i:i + per_row] for i in range(0, len(tiles), per_row)]
    sheet = _grid(rows)
    _save_png(sheet, out_path)
    return sheet


def pair_tile(a, b, caption, mark=None, side=112):
    """Two RGB faces side by side over a white caption strip.

    Parameters
    ----------
    a, b : numpy.ndarray
        HWC uint8 RGB images (resized to ``side`` x ``side``).
    caption : str
        Text under the faces; ``\\n`` separates lines.
    mark : {'same', 'different'}, optional
        Draw a green (same) or red (different) bar left of the faces: the truth.
    side : int
        Side of each face in the tile.

    Returns
    -------
    numpy.ndarray
        HWC uint8 RGB tile.
    """
    faces = [cv2.resize(np.ascontiguousarray(x), (side, side), interpolation=cv2.INTER_AREA)
             if x.shape[:2] != (side, side) else x for x in (a, b)]
    row = np.concatenate(faces, axis=1)
    if mark is not None:
        bar = np.zeros((side, 6, 3), np.uint8)
        bar[:] = (40, 200, 60) if mark == "same" else (220, 40, 40)
        row = np.concatenate([bar, row], axis=1)
    lines = str(caption).split("\n")
    scale = side / 280.0
    line_h = max(12, int(round(36 * scale)))
    strip = np.full((line_h * len(lines) + 4, row.shape[1], 3), 255, np.uint8)
    for k, line in enumerate(lines):
        cv2.putText(strip, line, (3, line_h * (k + 1) - 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([row, strip], axis=0)


def save_sheet(tiles, out_path, per_row=4):
    """Write equally-sized tiles as a grid image (format from the extension, atomically).

    Returns
    -------
    numpy.ndarray
        The sheet (HWC uint8 RGB).
    """
    tiles = list(tiles)
    if not tiles:
        raise ValueError(f"save_sheet: no tiles for {out_path}")
    per_row = max(1, int(per_row))
    sheet = _grid([tiles[i:i + per_row] for i in range(0, len(tiles), per_row)])
    _save_png(sheet, out_path)
    return sheet
