"""Reports of verification results: the model-zoo table and a JSON file."""
import json
import math
import os

import numpy as np

from ..utils.fileio import atomic_open

__all__ = ["format_accuracy", "format_table", "results_to_json", "write_json"]


def format_accuracy(result, digits=6):
    """``'0.995667+-0.003432'``: mean and std of the fold accuracies, as the gluon-face model
    zoo and insightface logs print them."""
    return f"{result['accuracy']:.{digits}f}+-{result['accuracy_std']:.{digits}f}"


def _variants(result):
    """``{False: no-flip result, True: flip result}`` of one :func:`evaluate_targets` entry."""
    if result.get("flip"):
        return {False: result.get("noflip"), True: result}
    return {False: result}


def format_table(results, digits=6):
    """The gluon-face model-zoo "Details" table (an RST grid table): a row per target, a
    column per flip setting.

    Parameters
    ----------
    results : dict
        ``{name: result}`` from :func:`gluonfr.metrics.evaluate_targets`.
    digits : int

    Returns
    -------
    str

    Example output::

        +--------------+--------------------------+--------------------------+
        | Flip         | False                    | True                     |
        +==============+==========================+==========================+
        | lfw:         | 0.995500+-0.003337       | 0.995667+-0.003432       |
        +--------------+--------------------------+--------------------------+
    """
    flips = sorted({f for res in results.values() for f, r in _variants(res).items()
                    if r is not None})
    header = ["Flip"] + [str(f) for f in flips]
    rows = []
    for name, res in results.items():
        variants = _variants(res)
        rows.append([f"{name}:"] + [format_accuracy(variants[f], digits)
                                    if variants.get(f) is not None else "-" for f in flips])
    widths = [max(len(r[i]) for r in [header] + rows) + 2 for i in range(len(header))]
    widths[0] = max(widths[0], 14)
    widths[1:] = [max(w, 26) for w in widths[1:]]

    def line(char):
        return "+" + "+".join(char * w for w in widths) + "+"

    def cells(values):
        return "|" + "|".join(f" {v}".ljust(w) for v, w in zip(values, widths)) + "|"

    out = [line("-"), cells(header), line("=")]
    for row in rows:
        out += [cells(row), line("-")]
    return "\n".join(out)


def _plain(value):
    """numpy scalars / arrays -> JSON types; NaN / inf -> None (JSON has neither)."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def _variant_json(res, curves):
    out = {k: v for k, v in res.items() if k not in ("noflip", "distances")}
    if not curves:
        for key in ("tpr", "fpr", "thresholds", "roc_fpr", "roc_tpr"):
            out.pop(key, None)
    return _plain(out)


def results_to_json(results, curves=True, **meta):
    """A JSON-ready dictionary of :func:`evaluate_targets` results.

    Parameters
    ----------
    results : dict
        ``{name: result}``.
    curves : bool
        Keep the ROC arrays (``tpr``/``fpr`` on the threshold grid, ``roc_fpr``/``roc_tpr``).
    **meta
        Extra top-level entries (model, parameter file, ...).

    Returns
    -------
    dict
        ``{**meta, "targets": {name: {"noflip": {...}, "flip": {...}}}}``; NaN becomes null.
    """
    targets = {}
    for name, res in results.items():
        entry = {}
        for flip, variant in _variants(res).items():
            if variant is not None:
                entry["flip" if flip else "noflip"] = _variant_json(variant, curves)
        targets[name] = entry
    return {**_plain(meta), "targets": targets}


def write_json(obj, path):
    """Write JSON atomically (:func:`gluonfr.utils.fileio.atomic_open`); returns ``path``."""
    path = os.fspath(path)
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
        f.write("\n")
    return path

