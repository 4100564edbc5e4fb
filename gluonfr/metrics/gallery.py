"""Error galleries: look at the pairs a model gets wrong on a verification target.

At a threshold on the squared L2 distance of the unit embeddings (a pair is called "same"
when ``dist < threshold``, the protocol's rule), the *hardest* false positives are the
different-people pairs with the smallest distances and the hardest false negatives the
same-person pairs with the largest. :func:`error_gallery` saves each kind as an image grid
(the two faces, the distance, the pair's index in the ``.bin``) and lists them in JSON.
"""
import json
import os

import numpy as np

from ..data.preview import pair_tile, save_sheet
from ..utils.fileio import atomic_open

__all__ = ["hardest_errors", "error_gallery"]


def hardest_errors(distances, issame, threshold, num=16):
    """Indices of the hardest false positives and false negatives, hardest first.

    Parameters
    ----------
    distances : array-like, (P,)
        Squared L2 distance of each pair's unit embeddings.
    issame : array-like of bool, (P,)
    threshold : float
        Pairs with ``distance < threshold`` are called the same person.
    num : int
        At most this many of each kind.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        False positives by increasing distance, false negatives by decreasing distance
        (ties: lower pair index first).
    """
    dist = np.asarray(distances, dtype=np.float64)
    same = np.asarray(issame, dtype=bool)
    if dist.shape != same.shape or dist.ndim != 1:
        raise ValueError(f"distances {dist.shape} and issame {same.shape} must be (P,) arrays")
    fp = np.flatnonzero(~same & (dist < threshold))
    fn = np.flatnonzero(same & ~(dist < threshold))
    fp = fp[np.argsort(dist[fp], kind="stable")][:num]
    fn = fn[np.argsort(-dist[fn], kind="stable")][:num]
    return fp, fn


def error_gallery(images, issame, distances, threshold, out_dir, name, num=16, per_row=4):
    """Save the hardest errors of one target as image grids and a JSON list.

    Parameters
    ----------
    images : NDArray or numpy.ndarray
        (2P, H, W, 3) uint8 RGB in pair order, as :func:`gluonfr.data.load_bin` returns.
    issame, distances, threshold, num
        As :func:`hardest_errors`.
    out_dir : str
        Folder for ``<name>_false_positives.jpg``, ``<name>_false_negatives.jpg`` (written
        when there is at least one such error) and ``<name>_errors.json``.
    name : str
        The target's name.
    per_row : int
        Pairs per grid row.

    Returns
    -------
    dict
        ``threshold``, ``num_false_positives`` / ``num_false_negatives`` (all of them),
        ``false_positives`` / ``false_negatives`` (the shown ``[pair index, distance]``) and
        ``files`` (paths written).
    """
    dist = np.asarray(distances, dtype=np.float64)
    same = np.asarray(issame, dtype=bool)
    fp, fn = hardest_errors(dist, same, threshold, num)
    arr = images.asnumpy() if hasattr(images, "asnumpy") else np.asarray(images)
    if arr.shape[0] != 2 * len(same):
        raise ValueError(f"{name}: {arr.shape[0]} images for {len(same)} pairs")
    os.makedirs(out_dir, exist_ok=True)
    files = []
    for kind, idx, mark in (("false_positives", fp, "different"),
                            ("false_negatives", fn, "same")):
        if not len(idx):
            continue
        tiles = [pair_tile(arr[2 * k], arr[2 * k + 1],
                           f"pair {k}  d={dist[k]:.3f}\nthreshold {threshold:.3f}", mark=mark,
                           side=112) for k in idx]
        path = os.path.join(out_dir, f"{name}_{kind}.jpg")
        save_sheet(tiles, path, per_row=per_row)
        files.append(path)
    summary = {
        "target": name, "threshold": float(threshold),
        "rule": "same person when squared L2 distance < threshold",
        "num_false_positives": int((~same & (dist < threshold)).sum()),
        "num_false_negatives": int((same & ~(dist < threshold)).sum()),
        "false_positives": [[int(k), float(dist[k])] for k in fp],
        "false_negatives": [[int(k), float(dist[k])] for k in fn],
    }
    path = os.path.join(out_dir, f"{name}_errors.json")
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    files.append(path)
    summary["files"] = files
    return summary
