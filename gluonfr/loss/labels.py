"""Class-id labels: the host-side check and the in-graph guard used by every loss head.

Out-of-range ids are the classic silent bug of sparse heads: ``pick`` clips them, ``one_hot``
turns them into an all-zero row, so the sample trains against the wrong class or none. Here a
bad label is either a ``ValueError`` (host check, every imperative call and every call of a
hybridized head unless ``check_label=False``) or, inside the graph, a NaN loss for exactly that
sample with zero gradient (nothing is read out of bounds and no weight is corrupted).
"""
import numpy as np
from mxnet import nd

__all__ = ["check_labels"]


def check_labels(label, num_classes, name="label"):
    """Raise a clear error unless every label is an integer class id in ``[0, num_classes)``.

    The engine calls this on the host batch when it runs the heads with ``check_label=False``
    (one check per batch instead of one device sync per context).

    Parameters
    ----------
    label : NDArray or numpy.ndarray or sequence
        Class ids, shape (N,) or (N, 1); float32/float64 or an integer dtype.
    num_classes : int
        Number of classes C.
    name : str
        Argument name used in the error message.

    Returns
    -------
    numpy.ndarray
        The labels as int64, shape (N,).

    Raises
    ------
    TypeError
        For float16 labels (class ids above 2048 are not representable in float16).
    ValueError
        For a bad shape, a non-integer value or an id outside ``[0, num_classes)``.
    """
    arr = label.asnumpy() if isinstance(label, nd.NDArray) else np.asarray(label)
    if arr.dtype == np.float16:
        raise TypeError(f"{name}: float16 labels are not supported (ids above 2048 are not "
                        "exact in float16); pass float32 or int32 class ids")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name}: expected numeric class ids, got dtype {arr.dtype}")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected shape (N,) or (N, 1), got {tuple(arr.shape)}")
    num_classes = int(num_classes)
    bad = ~np.isfinite(arr) | (arr != np.floor(arr)) | (arr < 0) | (arr >= num_classes)
    if bad.any():
        pos = np.flatnonzero(bad)
        shown = ", ".join(f"[{i}]={arr[i]!r}" for i in pos[:5])
        more = f" and {len(pos) - 5} more" if len(pos) > 5 else ""
        raise ValueError(f"{name}: {len(pos)} of {arr.size} labels are not integer class ids in "
                         f"[0, {num_classes}): {shown}{more}")
    return arr.astype(np.int64)


def guard_labels(F, label, logits):
    """In-graph label guard: a safe gather index and a validity mask.

    Parameters
    ----------
    F : module
        ``mx.nd`` or ``mx.sym``.
    label : NDArray or Symbol
        (N,) or (N, 1) class ids in any numeric dtype (never cast to float16 here).
    logits : NDArray or Symbol
        (N, C) scores; only its shape is used, so this works under hybridize.

    Returns
    -------
    index : int64 (N,)
        The label where it is valid, else 0: always a safe index.
    valid : float64 (N,)
        1 where the label is an integer in ``[0, C)``, else 0.
    num_classes : int64 (1,)
        C, read from the shape of ``logits`` at run time.
    """
    num_classes = F.slice_axis(F.shape_array(logits), axis=0, begin=1, end=2)
    # float64 holds every int32 and float32 label exactly
    lab = F.cast(F.reshape(label, shape=(-1,)), "float64")
    upper = F.cast(num_classes, "float64")
    valid = (lab >= 0) * (lab == F.floor(lab)) * F.broadcast_lesser(lab, upper)
    # invalid ids (negative, too large, fractional, NaN) read class 0 instead: always in bounds
    index = F.where(valid, lab, F.zeros_like(lab))
    return F.cast(index, "int64"), valid, num_classes
