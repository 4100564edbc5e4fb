"""L2-softmax (Ranjan, Castillo and Chellappa, arXiv 1703.09507): softmax on norm-alpha features."""
import math
import warnings

import mxnet as mx
import numpy as np

from ..nn.norm_dense import l2_normalize
from .base import SoftmaxHeadLoss
from .labels import guard_labels
from .registry import register_loss

__all__ = ["L2SoftmaxLoss"]


@register_loss(name="l2softmax", kind="embedding")
class L2SoftmaxLoss(SoftmaxHeadLoss):
    r"""L2-constrained softmax loss head: ``CE(W * (alpha * x/|x|) + b, label)`` per sample.

    The embedding is L2-normalised and scaled to norm ``alpha``, then goes through an
    ordinary dense layer (weights not normalised) owned by this block, then softmax
    cross-entropy. Unlike the margin losses its input is the embedding, not cosines.

    The paper's lower bound on ``alpha`` for a target-class probability ``p`` with ``C``
    classes is ``alpha_low = log(p*(C-2)/(1-p))`` (:meth:`alpha_lower_bound`): a smaller
    alpha cannot reach probability ``p`` even for a perfectly placed feature. A warning is
    issued when ``alpha`` is below the bound for ``p = 0.9``.

    Parameters
    ----------
    classes : int
        Number of classes C.
    in_units : int
        Embedding size D.
    alpha : float
        Feature norm (initial value when learnable).
    learn_alpha : bool, default False
        Make alpha a trainable parameter (the paper's learned-alpha variant).
    use_bias : bool, default True
        Bias in the dense layer.
    dtype : str, default 'float32'
        Parameter dtype (float16 needs a GPU for ``FullyConnected``).
    weight_initializer : Initializer, optional
        Initialiser of the dense weight (MXNet's default uniform when None).
    return_logits, check_label, fast_backward, weight
        As in :class:`gluonfr.loss.CombinedMarginLoss`.

    Inputs: ``embedding`` (N, D), ``label`` (N,), optional ``sample_weight`` (N,).
    Output: per-sample loss (N,) (and detached logits (N, C) with ``return_logits``).
    """

    #: the constructor argument ``--margin-s`` sets (the engine's ``loss_kwargs``)
    config_scale = "alpha"

    def __init__(self, classes, in_units, alpha, learn_alpha=False, use_bias=True,
                 dtype="float32", weight_initializer=None, **kwargs):
        super().__init__(**kwargs)
        classes, alpha = int(classes), float(alpha)
        if classes <= 0:
            raise ValueError(f"L2SoftmaxLoss: classes must be a positive integer, got {classes}")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"L2SoftmaxLoss: alpha must be a finite number > 0, got {alpha}")
        if classes > 2 and alpha < self.alpha_lower_bound(classes, 0.9):
            warnings.warn(f"L2SoftmaxLoss: alpha={alpha:g} is below the paper's lower bound "
                          f"{self.alpha_lower_bound(classes, 0.9):.2f} for p=0.9 with "
                          f"{classes} classes", stacklevel=2)
        if int(in_units) <= 0:
            raise ValueError(f"L2SoftmaxLoss: in_units must be a positive integer, got {in_units}")
        self._classes = classes
        self._in_units = int(in_units)
        self._use_bias = bool(use_bias)
        with self.name_scope():
            self.weight = self.params.get("weight", shape=(classes, self._in_units),
                                          init=weight_initializer, dtype=dtype)
            self.bias = (self.params.get("bias", shape=(classes,), init="zeros", dtype=dtype)
                         if use_bias else None)
            self.alpha = self.params.get("alpha", shape=(1,), init=mx.init.Constant(alpha),
                                         dtype=dtype,
                                         grad_req="write" if learn_alpha else "null")

    @staticmethod
    def alpha_lower_bound(classes, p=0.9):
        """The paper's ``alpha_low = log(p*(C-2)/(1-p))``.

        Parameters
        ----------
        classes : int
            Number of classes C (at least 3: the bound is derived for C > 2).
        p : float, default 0.9
            Target-class softmax probability to be reachable, ``0 < p < 1``.
        """
        if int(classes) < 3:
            raise ValueError(f"alpha_lower_bound: needs classes >= 3, got {classes}")
        if not 0.0 < p < 1.0:
            raise ValueError(f"alpha_lower_bound: p must be in (0, 1), got {p}")
        return math.log(p * (int(classes) - 2) / (1.0 - p))

    def _num_classes(self, data):
        return self._classes

    def hybrid_forward(self, F, embedding, label, sample_weight=None, weight=None, bias=None,
                       alpha=None):
        half_params = np.dtype(self.weight.dtype) == np.float16
        x = l2_normalize(F, self._to_compute_dtype(F, embedding))
        if half_params:
            x = F.cast(x, "float16")
        x = F.broadcast_mul(x, alpha)
        logits = F.FullyConnected(x, weight, bias, no_bias=bias is None,
                                  num_hidden=self._classes, flatten=True)
        if half_params:
            logits = F.cast(logits, "float32")
        elif self._traced:  # MXNet AMP may have made the product float16
            logits = F.amp_cast(logits, dtype="float32")
        index, valid, _ = guard_labels(F, label, logits)
        return self._cross_entropy(F, logits, index, valid, sample_weight)

    def __repr__(self):
        return (f"L2SoftmaxLoss({self._classes}, in_units={self._in_units}, "
                f"learn_alpha={self.alpha.grad_req != 'null'}, use_bias={self._use_bias})")
