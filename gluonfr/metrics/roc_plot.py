"""ROC figure of verification results: one curve per target on a log-FAR axis."""
import os

import numpy as np

from .._optional import import_optional
from ..utils.fileio import atomic_paths

__all__ = ["plot_roc"]


def plot_roc(results, path, title="ROC", far_target=1e-3):
    """Draw the ROC of each target (TAR against log FAR) into an image file.

    Uses matplotlib's Agg canvas directly, so it works without a display and does not touch
    the pyplot backend of the calling program.

    Parameters
    ----------
    results : dict
        ``{name: result}`` from :func:`gluonfr.metrics.evaluate_targets` or
        :func:`gluonfr.metrics.verification`: ``roc_fpr`` / ``roc_tpr`` (the exact ROC) are
        drawn; for the flip-fused result when there is one. A ``label`` entry replaces the
        legend's default text (name, accuracy, AUC).
    path : str
        Output file; its extension picks the format (``.png``, ``.pdf``, ``.svg``). Written
        to a temporary file beside it and renamed when complete.
    title : str
    far_target : float or None
        Draw a dotted vertical line at this FAR (the VAL@FAR operating point).

    Returns
    -------
    str
        ``path``.
    """
    import_optional("matplotlib", "viz", "plot_roc")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    fig = Figure(figsize=(6.4, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    curves = {name: res for name, res in results.items() if len(res.get("roc_fpr", ()))}
    # Left edge: half the smallest measurable FAR. ROC points at FAR 0 (no place on a log
    # axis) are drawn on that edge, so a perfect ROC still shows as a line.
    floor = 0.5 / max([res.get("num_diff", 1) for res in curves.values()] + [1])
    for name, res in curves.items():
        fpr = np.maximum(np.asarray(res["roc_fpr"], dtype=np.float64), floor)
        tpr = np.asarray(res["roc_tpr"], dtype=np.float64)
        label = res.get("label") or f"{name} (acc {res['accuracy']:.4f}, AUC {res['auc']:.4f})"
        ax.plot(fpr, tpr, lw=1.2, label=label)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.01)
    if far_target is not None:
        ax.axvline(far_target, color="0.5", ls=":", lw=1)
    ax.grid(True, which="both", ls="--", lw=0.5, alpha=0.6)
    ax.set_xlabel("False accept rate (FAR)")
    ax.set_ylabel("True accept rate (TAR)")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize="small")
    with atomic_paths(path) as (tmp,):
        fig.savefig(tmp, format=fmt)
    return path
