"""``FaceVerification``: the verification protocol as an ``mx.metric.EvalMetric``."""
import warnings

import mxnet as mx
import numpy as np

from .embeddings import FLIP_MODES, combine_flip
from .protocol import verification

__all__ = ["FaceVerification"]


def _numpy(x, what):
    if isinstance(x, (list, tuple)) and len(x) == 1:  # EvalMetric style: lists of arrays
        x = x[0]
    if isinstance(x, mx.nd.NDArray):
        x = x.asnumpy()
    try:
        return np.asarray(x)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"FaceVerification.update: {what} is not an array ({e})") from e


@mx.metric.register
class FaceVerification(mx.metric.EvalMetric):
    """Verification accuracy of accumulated pairs (insightface's k-fold protocol).

    ``update`` collects pairs, batch after batch; ``get`` runs
    :func:`gluonfr.metrics.verification` over all of them. One metric holds one target: use
    one instance per target, or call :meth:`reset` between targets. (gluon-face 1.0.2 kept
    one flip metric for all targets without resetting it, so each published "flip" number
    pooled the pairs of every earlier target.)

    Parameters
    ----------
    nfolds : int
        Contiguous folds (10 for published numbers).
    flip : bool
        Whether the embeddings are flip-fused. With ``flip=True``, ``update`` either gets the
        flipped embeddings too and fuses them with ``mode``, or gets embeddings that are
        already fused (as :func:`gluonfr.metrics.extract_embeddings` returns them). It also
        names the metric ``'verification-flip'``.
    mode : {'sum', 'concat'}
        Fusion of flipped embeddings given to ``update``.
    far_target : float
        FAR for VAL@FAR.
    name : str, optional
    gluonface_get : bool
        Compatibility with gluon-face 1.0.2 (deprecated): :meth:`get` returns gluon-face's
        7-tuple ``(tpr, fpr, accuracy, val, val_std, far, accuracy_std)`` instead of
        ``(name, accuracy)``. The numbers are this metric's (squared L2 on normalised
        embeddings, thresholds 0..4; gluon-face's plain L2 over 0..2 ranks pairs the same but
        its threshold grid is coarser in squared terms); ``tpr``/``fpr`` are per threshold,
        averaged over the folds, as in gluon-face. Off by default because the tuple breaks
        ``EvalMetric.get``'s contract (``CompositeEvalMetric``, ``get_name_value``).

    Examples
    --------
    >>> metric = FaceVerification(nfolds=10, flip=True)
    >>> for issame, img_a, img_b in pairs:  # e.g. a DataLoader over a .bin
    ...     metric.update(issame, net(img_a), net(img_b), net(flip(img_a)), net(flip(img_b)))
    >>> metric.get()
    ('verification-flip', 0.9955)
    >>> metric.result()['accuracy_std']
    """

    def __init__(self, nfolds=10, flip=True, mode="sum", far_target=1e-3, name=None,
                 output_names=None, label_names=None, gluonface_get=False):
        if mode not in FLIP_MODES:
            raise ValueError(f"flip mode must be one of {FLIP_MODES}, got {mode!r}")
        if int(nfolds) != nfolds or nfolds < 1:
            raise ValueError(f"nfolds must be a positive integer, got {nfolds!r}")
        self.nfolds = int(nfolds)
        self.flip = bool(flip)
        self.mode = mode
        self.far_target = float(far_target)
        self.gluonface_get = bool(gluonface_get)
        if self.gluonface_get:
            warnings.warn("FaceVerification(gluonface_get=True): gluon-face's 7-tuple get() is "
                          "deprecated; use get() -> (name, accuracy) and result() -> dict",
                          DeprecationWarning, stacklevel=2)
        if name is None:
            name = "verification-flip" if self.flip else "verification"
        super().__init__(name, output_names=output_names, label_names=label_names,
                         nfolds=self.nfolds, flip=self.flip, mode=mode,
                         far_target=self.far_target, gluonface_get=self.gluonface_get)

    def reset(self):
        """Forget every pair (start a new target)."""
        self._issame, self._emb_a, self._emb_b = [], [], []
        self._result = None
        super().reset()

    def reset_local(self):
        """Same as :meth:`reset`: the metric has no separate global state."""
        self.reset()

    def update(self, issame, emb_a, emb_b=None, flip_a=None, flip_b=None):
        """Add a batch of pairs.

        Parameters
        ----------
        issame : array_like of bool (n,) (NDArray, numpy, or a one-element list of them)
        emb_a, emb_b : NDArray or numpy (n, D)
            Raw embeddings of the first and second image of each pair. ``EvalMetric`` style
            is accepted too: ``update([issame], [emb_a, emb_b])`` (or four arrays with the
            flipped embeddings).
        flip_a, flip_b : NDArray or numpy (n, D), optional
            Embeddings of the mirrored images, fused with ``mode``; only with ``flip=True``.
        """
        if emb_b is None:
            preds = list(emb_a) if isinstance(emb_a, (list, tuple)) else None
            if preds is None or len(preds) not in (2, 4):
                raise ValueError("FaceVerification.update needs emb_a and emb_b (or preds as "
                                 "a list [emb_a, emb_b] / [emb_a, emb_b, flip_a, flip_b])")
            emb_a, emb_b = preds[:2]
            if len(preds) == 4:
                flip_a, flip_b = preds[2:]
        issame = _numpy(issame, "issame").ravel()
        a, b = _numpy(emb_a, "emb_a"), _numpy(emb_b, "emb_b")
        if (flip_a is None) != (flip_b is None):
            raise ValueError("FaceVerification.update: give both flip_a and flip_b, or neither")
        if flip_a is not None:
            if not self.flip:
                raise ValueError("FaceVerification(flip=False) got flipped embeddings; create "
                                 "it with flip=True to fuse them")
            a = combine_flip(a, _numpy(flip_a, "flip_a"), self.mode)
            b = combine_flip(b, _numpy(flip_b, "flip_b"), self.mode)
        if a.ndim != 2 or a.shape != b.shape or a.shape[0] != issame.shape[0]:
            raise ValueError(f"FaceVerification.update: emb_a {a.shape} and emb_b {b.shape} "
                             f"must both be (n, D) with n = len(issame) = {issame.shape[0]}")
        if self._emb_a and a.shape[1] != self._emb_a[0].shape[1]:
            raise ValueError(f"FaceVerification.update: embeddings of size {a.shape[1]} after "
                             f"earlier ones of size {self._emb_a[0].shape[1]}; reset() between "
                             "targets or models")
        if not np.isin(issame, (0, 1)).all():
            raise ValueError("FaceVerification.update: issame must hold bools or 0/1 values")
        self._issame.append(issame.astype(bool))
        self._emb_a.append(a)
        self._emb_b.append(b)
        self._result = None
        self.num_inst += len(issame)
        self.global_num_inst += len(issame)

    def result(self):
        """The full :func:`gluonfr.metrics.verification` dictionary of the pairs so far."""
        if not self.num_inst:
            raise ValueError(f"{self.name}: no pairs; call update() first")
        if self._result is None:
            a, b = np.concatenate(self._emb_a), np.concatenate(self._emb_b)
            emb = np.empty((2 * len(a), a.shape[1]), dtype=np.result_type(a, b))
            emb[0::2], emb[1::2] = a, b
            self._result = verification(emb, np.concatenate(self._issame), nfolds=self.nfolds,
                                        far_target=self.far_target)
        return self._result

    def get(self):
        """``(name, mean accuracy over the folds)``; NaN before any update.

        With ``gluonface_get=True``: ``(tpr, fpr, accuracy, val, val_std, far,
        accuracy_std)`` (gluon-face's order), after at least one update.
        """
        if self.gluonface_get:
            r = self.result()
            return (r["tpr"], r["fpr"], r["accuracy"], r["val"], r["val_std"], r["far"],
                    r["accuracy_std"])
        if not self.num_inst:
            return self.name, float("nan")
        return self.name, self.result()["accuracy"]

    def get_global(self):
        return self.get()
