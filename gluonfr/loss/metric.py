"""Pair and triplet losses on embeddings: contrastive, triplet (batch-hard / batch-all), MPS.

Distances are Euclidean, ``d = sqrt(max(|a - b|^2, 1e-12))`` (the floor keeps the gradient
finite for identical embeddings). Triplet loss wants batches of P identities x K images:
``--sampler pk`` in training (:class:`gluonfr.data.PKSampler`).
"""
import numpy as np
from mxnet import nd
from mxnet.gluon import HybridBlock

from .embedding import _pairwise_sq
from .registry import register_loss

__all__ = ["ContrastiveLoss", "TripletLoss", "MPSLoss"]

_D2_FLOOR = 1e-12


def _check_binary(same, n):
    arr = same.asnumpy() if isinstance(same, nd.NDArray) else np.asarray(same)
    arr = arr.reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"same: expected {n} 0/1 labels (one per pair), got {arr.shape[0]}")
    bad = np.flatnonzero((arr != 0) & (arr != 1))
    if bad.size:
        raise ValueError(f"same: {bad.size} of {arr.size} labels are not 0 or 1: "
                         + ", ".join(f"[{i}]={arr[i]!r}" for i in bad[:5]))


def _check_ids(label, n):
    arr = label.asnumpy() if isinstance(label, nd.NDArray) else np.asarray(label)
    arr = arr.reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"label: expected {n} identity ids (one per embedding), got "
                         f"{arr.shape[0]}")
    if not np.all(np.isfinite(arr) & (arr == np.floor(arr))):
        raise ValueError("label: identity ids must be integers")


@register_loss(name="contrastive", kind="pair")
class ContrastiveLoss(HybridBlock):
    r"""Contrastive loss (Hadsell, Chopra and LeCun, CVPR 2006) on Euclidean distances.

    ``loss(a, b, same)`` per pair: ``same*d^2 + (1 - same)*max(margin - d, 0)^2`` with
    ``d = |a - b|`` (gluon-face 1.0.2 took the norm of the *squared* difference).

    Parameters
    ----------
    margin : float, default 1.0
    """

    def __init__(self, margin=1.0, **kwargs):
        super().__init__(**kwargs)
        self._margin = float(margin)

    def forward(self, a, b, same):
        """``a``, ``b`` (N, D) embedding batches; ``same`` (N,) 1 for a genuine pair, else 0."""
        if isinstance(a, nd.NDArray):
            if a.shape != b.shape:
                raise ValueError(f"ContrastiveLoss: a {a.shape} and b {b.shape} differ")
            _check_binary(same, a.shape[0])
        return super().forward(a, b, same)

    def hybrid_forward(self, F, a, b, same):
        d2 = F.sum(F.square(a - b), axis=1)
        d = F.sqrt(F.maximum(d2, _D2_FLOOR))
        y = F.reshape(same, shape=(-1,))
        return y * d2 + (1 - y) * F.square(F.relu(self._margin - d))


@register_loss(name="triplet", kind="auxiliary")
class TripletLoss(HybridBlock):
    r"""Triplet loss over the batch (Hermans, Beyer and Leibe 2017 mining), per anchor.

    ``loss(embedding, label) -> (N,)``. Distances ``d`` are Euclidean (``normalize=True``
    first L2-normalises the embeddings).

    * ``mining='batch_hard'``: ``max(margin + max_p d(a, p) - min_n d(a, n), 0)`` with p
      over the other images of the anchor's identity and n over the other identities;
    * ``mining='batch_all'``: the mean of ``max(margin + d(a, p) - d(a, n), 0)`` over every
      valid (p, n) of the anchor.

    An anchor without a positive or a negative in the batch gets 0. The batch needs several
    images per identity: P identities x K images (``--sampler pk``).

    Parameters
    ----------
    margin : float, default 0.2
    mining : {'batch_hard', 'batch_all'}
    normalize : bool, default False
    """

    def __init__(self, margin=0.2, mining="batch_hard", normalize=False, **kwargs):
        super().__init__(**kwargs)
        if mining not in ("batch_hard", "batch_all"):
            raise ValueError(f"TripletLoss: mining must be 'batch_hard' or 'batch_all', got "
                             f"{mining!r}")
        self._margin, self._mining, self._normalize = float(margin), mining, bool(normalize)

    def forward(self, embedding, label):
        """``embedding`` (N, D); ``label`` (N,) integer identity ids."""
        if isinstance(embedding, nd.NDArray):
            _check_ids(label, embedding.shape[0])
        return super().forward(embedding, label)

    def hybrid_forward(self, F, embedding, label):
        x = F.L2Normalization(embedding, mode="instance") if self._normalize else embedding
        d = F.sqrt(F.maximum(_pairwise_sq(F, x, x), _D2_FLOOR))
        lab = F.reshape(label, shape=(-1,))
        same = F.broadcast_equal(F.reshape(lab, shape=(-1, 1)), F.reshape(lab, shape=(1, -1)))
        eye = F.broadcast_equal(F.reshape(F.contrib.arange_like(lab), shape=(-1, 1)),
                                F.reshape(F.contrib.arange_like(lab), shape=(1, -1)))
        pos = same - eye  # other images of the anchor's identity
        neg = 1 - same
        if self._mining == "batch_hard":
            hardest_pos = F.max(d * pos, axis=1)  # d >= 0: masked entries never win
            big = F.max(d) + 1.0
            hardest_neg = F.min(F.broadcast_add(d * neg, F.broadcast_mul(1 - neg, big)), axis=1)
            has = (F.sum(pos, axis=1) > 0) * (F.sum(neg, axis=1) > 0)
            return has * F.relu(self._margin + hardest_pos - hardest_neg)
        # batch_all: (anchor, p, n) through broadcasting
        diff = F.broadcast_sub(F.expand_dims(d, axis=2), F.expand_dims(d, axis=1))
        valid = F.broadcast_mul(F.expand_dims(pos, axis=2), F.expand_dims(neg, axis=1))
        hinge = F.relu(diff + self._margin) * valid
        count = F.sum(F.sum(valid, axis=2), axis=1)
        return F.sum(F.sum(hinge, axis=2), axis=1) / F.maximum(count, 1.0)


@register_loss(name="mps", kind="pair")
class MPSLoss(HybridBlock):
    r"""Max-margin Pairwise Score loss (DocFace, Shi and Jain 2018) on a batch of pairs.

    ``loss(a, b)``: row i of ``a`` and of ``b`` are two images of identity i (an ID photo
    and a selfie in DocFace), every other row another identity. With the cosine scores
    ``S_ij = <a_i, b_j>/(|a_i||b_j|)``, per pair i:
    ``max(margin + max_{j != i} max(S_ij, S_ji) - S_ii, 0)``, the hardest negative of either
    side against the genuine score (gluon-face 1.0.2 halved it).

    Parameters
    ----------
    margin : float, default 0.5
    """

    def __init__(self, margin=0.5, **kwargs):
        super().__init__(**kwargs)
        self._margin = float(margin)

    def forward(self, a, b):
        """``a``, ``b`` (N, D): pair i is (a_i, b_i); N >= 2."""
        if isinstance(a, nd.NDArray):
            if a.shape != b.shape or a.shape[0] < 2:
                raise ValueError(f"MPSLoss: needs two (N, D) batches with N >= 2, got {a.shape} "
                                 f"and {b.shape}")
        return super().forward(a, b)

    def hybrid_forward(self, F, a, b):
        s = F.dot(F.L2Normalization(a, mode="instance"), F.L2Normalization(b, mode="instance"),
                  transpose_b=True)
        idx = F.contrib.arange_like(F.slice_axis(s, axis=1, begin=0, end=1), axis=0)
        eye = F.broadcast_equal(F.reshape(idx, shape=(-1, 1)), F.reshape(idx, shape=(1, -1)))
        masked = s - 4.0 * eye  # scores are in [-1, 1]: the diagonal never wins
        hardest = F.maximum(F.max(masked, axis=1), F.max(masked, axis=0))
        genuine = F.sum(s * eye, axis=1)
        return F.relu(self._margin + hardest - genuine)
