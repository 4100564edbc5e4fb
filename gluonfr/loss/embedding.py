"""Embedding-space terms with their own parameters: centre, ring and git losses, and LGM.

``center``, ``ring`` and ``git`` are extra terms beside a softmax-type head (kind
``"auxiliary"``): ``term(embedding, label) -> (N,)``, added to the head's loss by the
training engine (``--aux-loss``). LGM is a whole head (kind ``"embedding"``): it owns its
class means and variances and returns ``(loss, logits)`` like L2-softmax.
"""
import mxnet as mx
from mxnet import nd
from mxnet.gluon import HybridBlock

from .base import SoftmaxHeadLoss
from .labels import check_labels, guard_labels
from .margin import _replace_target
from .registry import register_loss

__all__ = ["CenterLoss", "RingLoss", "GitLoss", "LGMLoss"]


def _positive_int(cls, **values):
    for name, value in values.items():
        if int(value) != value or int(value) <= 0:
            raise ValueError(f"{cls}: {name} must be a positive integer, got {value!r}")


def _pairwise_sq(F, x, y):
    """(N, M) squared Euclidean distances between the rows of x (N, D) and y (M, D)."""
    xx = F.sum(F.square(x), axis=1, keepdims=True)
    yy = F.reshape(F.sum(F.square(y), axis=1), shape=(1, -1))
    xy = F.dot(x, y, transpose_b=True)
    return F.relu(F.broadcast_add(F.broadcast_sub(xx, 2 * xy), yy))


class _AuxiliaryLoss(HybridBlock):
    """Host label check (``check_label``) and the loss weight shared by the extra terms."""

    def __init__(self, classes, check_label=True, **kwargs):
        super().__init__(**kwargs)
        self._classes = int(classes)
        self._check_label = bool(check_label)

    def forward(self, embedding, label):
        """Per-sample term (N,) of ``embedding`` (N, D) with class ids ``label`` (N,)."""
        if self._check_label and isinstance(label, nd.NDArray):
            check_labels(label, self._classes)
        return super().forward(embedding, label)


@register_loss(name="center", kind="auxiliary")
class CenterLoss(_AuxiliaryLoss):
    r"""Centre loss (Wen et al., ECCV 2016): ``lamda/2 * |f_i - c_{y_i}|^2`` per sample.

    The class centres ``c`` (C, D) are a parameter of this block, learned by the optimiser
    with the network (the paper's own update ``c_j -= alpha * sum_i (c_j - f_i) / (1 + n_j)``
    is what SGD on this term does up to the count normalisation; ``alpha`` is then the
    learning rate).

    Parameters
    ----------
    classes, in_units : int
    lamda : float, default 0.003
        Weight of the term (the paper's face-recognition setting).
    check_label : bool, default True
    """

    def __init__(self, classes, in_units, lamda=0.003, check_label=True, **kwargs):
        _positive_int("CenterLoss", classes=classes, in_units=in_units)
        super().__init__(classes, check_label, **kwargs)
        self._lamda = float(lamda)
        with self.name_scope():
            self.centers = self.params.get("centers", shape=(int(classes), int(in_units)),
                                           init=mx.init.Zero())

    def hybrid_forward(self, F, embedding, label, centers):
        c = F.take(centers, F.reshape(label, shape=(-1,)), mode="clip")
        return 0.5 * self._lamda * F.sum(F.square(embedding - c), axis=1)


@register_loss(name="ring", kind="auxiliary")
class RingLoss(_AuxiliaryLoss):
    r"""Ring loss (Zheng et al., CVPR 2018): ``lamda/2 * (|f_i| - R)^2``, R learned.

    Parameters
    ----------
    lamda : float, default 0.01
    r_init : float, default 1.0
        Initial radius R (a parameter of this block).
    classes : int, optional
        Only for the host label check (ring loss ignores labels); None skips it.
    """

    def __init__(self, lamda=0.01, r_init=1.0, classes=None, **kwargs):
        kwargs.setdefault("check_label", classes is not None)
        super().__init__(classes or 1, **kwargs)
        self._lamda = float(lamda)
        with self.name_scope():
            self.radius = self.params.get("radius", shape=(1,),
                                          init=mx.init.Constant(float(r_init)))

    def forward(self, embedding, label=None):
        """Per-sample term (N,); ``label`` is accepted (and checked) but not used."""
        if label is not None and self._check_label and isinstance(label, nd.NDArray):
            check_labels(label, self._classes)
        return HybridBlock.forward(self, embedding)

    def hybrid_forward(self, F, embedding, radius):
        norm = F.sqrt(F.sum(F.square(embedding), axis=1) + 1e-12)
        return 0.5 * self._lamda * F.square(F.broadcast_sub(norm, radius))


@register_loss(name="git", kind="auxiliary")
class GitLoss(_AuxiliaryLoss):
    r"""Git loss (Calefati et al., BMVC 2018): centre pull plus a push from other centres.

    Per sample ``lamda_c/2 * |f_i - c_{y_i}|^2 + lamda_g * mean_{j: y_j != y_i}
    1/(1 + |f_i - c_{y_j}|^2)`` over the batch samples j of another class (0 when there is
    none). Any batch size works (gluon-face 1.0.2's needed a fixed per-GPU batch size).

    Parameters
    ----------
    classes, in_units : int
    lamda_c, lamda_g : float, default 0.01, 0.01
    check_label : bool, default True
    """

    def __init__(self, classes, in_units, lamda_c=0.01, lamda_g=0.01, check_label=True,
                 **kwargs):
        _positive_int("GitLoss", classes=classes, in_units=in_units)
        super().__init__(classes, check_label, **kwargs)
        self._lamda_c, self._lamda_g = float(lamda_c), float(lamda_g)
        with self.name_scope():
            self.centers = self.params.get("centers", shape=(int(classes), int(in_units)),
                                           init=mx.init.Zero())

    def hybrid_forward(self, F, embedding, label, centers):
        lab = F.reshape(label, shape=(-1,))
        own = F.take(centers, lab, mode="clip")
        pull = 0.5 * self._lamda_c * F.sum(F.square(embedding - own), axis=1)
        other = F.broadcast_not_equal(F.reshape(lab, shape=(-1, 1)),
                                      F.reshape(lab, shape=(1, -1)))
        push = 1.0 / (1.0 + _pairwise_sq(F, embedding, own))  # (i, j): f_i vs c_{y_j}
        push = F.sum(push * other, axis=1) / F.maximum(F.sum(other, axis=1), 1.0)
        return pull + self._lamda_g * push


@register_loss(name="lgm", kind="embedding")
class LGMLoss(SoftmaxHeadLoss):
    r"""Large-margin Gaussian Mixture loss (Wan et al., CVPR 2018), diagonal covariances.

    Class k has a mean ``mu_k`` and a diagonal covariance ``Lambda_k`` (parameters; the
    variances are ``exp(log_var)``). With ``d_k = 1/2 (f - mu_k)^T Lambda_k^{-1} (f - mu_k)``
    the logits are ``-(1 + alpha*[k = y]) d_k - 1/2 log|Lambda_k|`` (equal priors), and the
    per-sample loss is their cross-entropy plus the likelihood term
    ``lamda * (d_y + 1/2 log|Lambda_y|)``.

    Parameters
    ----------
    classes, in_units : int
    alpha : float, default 0.2
        Classification margin (gluon-face's MNIST example used 0.2).
    lamda : float, default 0.1
        Weight of the likelihood term (gluon-face's MNIST example used 0.1).
    learn_var : bool, default False
        Learn the diagonal variances. Off by default (identity covariances): with learned
        variances the likelihood term can lower ``log|Lambda_y|`` without bound as a variance
        shrinks onto its features. The logits are quadratic in the embedding either way:
        LGM wants a smaller learning rate than the cosine heads (see docs/heads.rst).
    return_logits, check_label, fast_backward, weight
        As :class:`gluonfr.loss.CombinedMarginLoss`.

    Inputs: ``embedding`` (N, D), ``label`` (N,). Output: per-sample loss (and the logits,
    margin included, with ``return_logits``).
    """

    #: ``alpha`` is LGM's margin: ``--margin-m`` sets it (the engine's ``loss_kwargs``)
    config_margin = "alpha"

    def __init__(self, classes, in_units, alpha=0.2, lamda=0.1, learn_var=False, **kwargs):
        _positive_int("LGMLoss", classes=classes, in_units=in_units)
        super().__init__(**kwargs)
        self._classes, self._in_units = int(classes), int(in_units)
        self._alpha, self._lamda = float(alpha), float(lamda)
        if self._alpha < 0 or self._lamda < 0:
            raise ValueError(f"LGMLoss: alpha and lamda must be >= 0, got {alpha}, {lamda}")
        with self.name_scope():
            self.mean = self.params.get("mean", shape=(self._classes, self._in_units),
                                        init=mx.init.Xavier())
            self.log_var = self.params.get("log_var", shape=(self._classes, self._in_units),
                                           init=mx.init.Zero(),
                                           grad_req="write" if learn_var else "null")

    def _num_classes(self, data):
        return self._classes

    def hybrid_forward(self, F, embedding, label, sample_weight=None, mean=None, log_var=None):
        x = self._to_compute_dtype(F, embedding)
        inv = F.exp(-log_var)
        # d_ik = 1/2 sum_d (x_id - mu_kd)^2 / var_kd, expanded into three matrix products
        quad = (F.dot(F.square(x), inv, transpose_b=True)
                - 2 * F.dot(x, mean * inv, transpose_b=True))
        d = 0.5 * F.broadcast_add(quad, F.reshape(F.sum(F.square(mean) * inv, axis=1),
                                                  shape=(1, -1)))
        half_logdet = F.reshape(0.5 * F.sum(log_var, axis=1), shape=(1, -1))
        index, valid, num_classes = guard_labels(F, label, d)
        d_y = F.pick(d, index, axis=-1)
        logits = F.broadcast_sub(-d, half_logdet)
        target = F.pick(logits, index, axis=-1) - self._alpha * d_y
        logits = _replace_target(F, logits, target, index, num_classes)
        out = self._cross_entropy(F, logits, index, valid, None)
        loss, rest = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
        likelihood = d_y + F.pick(F.broadcast_like(half_logdet, d), index, axis=-1)
        loss = loss + self._lamda * (likelihood * self._weight if self._weight is not None
                                     else likelihood)
        if sample_weight is not None:
            loss = F.broadcast_mul(loss, F.reshape(sample_weight, shape=(-1,)))
        return (loss,) + tuple(rest) if rest else loss

    def __repr__(self):
        return (f"LGMLoss({self._classes}, in_units={self._in_units}, alpha={self._alpha}, "
                f"lamda={self._lamda})")
