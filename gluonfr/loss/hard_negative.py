"""Heads that re-weight hard negatives: MV-Softmax and CurricularFace.

Both find, per sample, the negative classes whose cosine exceeds the margin-adjusted target
cosine (the "mis-classified" or "hard" ones) and raise their logits; they differ in how.
"""
import math

from .base import SoftmaxHeadLoss, StatefulHeadLoss, stop_gradient
from .labels import guard_labels
from .margin import _check_finite, _replace_target, _sin_theta
from .registry import register_loss

__all__ = ["MVSoftmaxLoss", "CurricularFaceLoss"]


def _valid_mean(F, x, valid):
    """Mean of the (N,) ``x`` over the samples whose label is valid (0 when none is)."""
    ones = F.where(valid, F.ones_like(x), F.zeros_like(x))
    return F.sum(F.where(valid, x, F.zeros_like(x))) / F.maximum(F.sum(ones), 1.0)


def _arc_target(F, c, m):
    """cos(theta + m) by the addition formula, for c = cos(theta) in [-1, 1]."""
    return c * math.cos(m) - _sin_theta(F, c) * math.sin(m)


@register_loss(name="mv_softmax")
class MVSoftmaxLoss(SoftmaxHeadLoss):
    r"""MV-Softmax (Wang et al., AAAI 2020; gluon-face's SVXSoftmax): mis-classified vectors.

    Target cosine ``f = cos(theta_y) - m`` (``margin='am'``) or ``cos(theta_y + m)``
    (``margin='arc'``). A negative class j is mis-classified when ``cos(theta_j) > f``; its
    logit becomes ``s*((1 + t)*cos(theta_j) + t)`` (the paper's fixed re-weighting
    ``h = exp(s*t*(cos(theta_j) + 1))``); the others stay ``s*cos(theta_j)``.
    gluon-face's ``SVXSoftmax(t=...)`` writes the same as ``t'*cos + t' - 1`` with
    ``t' = 1 + t``; FaceX-Zoo's ``mv_weight`` is that ``t'``.

    Parameters
    ----------
    s : float, default 32.0
    m : float, default 0.35
    t : float, default 0.2
        Re-weighting of mis-classified negatives (0: plain AM- / ArcFace softmax).
    margin : {'am', 'arc'}, default 'am'
    **kwargs
        ``return_logits``, ``check_label``, ``fast_backward``, ``weight``.
    """

    def __init__(self, s=32.0, m=0.35, t=0.2, margin="am", **kwargs):
        super().__init__(**kwargs)
        s, m, t = float(s), float(m), float(t)
        _check_finite("MVSoftmaxLoss", s=s, m=m, t=t)
        if s <= 0 or t < 0:
            raise ValueError(f"MVSoftmaxLoss: needs s > 0 and t >= 0, got s={s}, t={t}")
        if margin not in ("am", "arc"):
            raise ValueError(f"MVSoftmaxLoss: margin must be 'am' or 'arc', got {margin!r}")
        self._s, self._m, self._t, self._margin = s, m, t, margin

    def hybrid_forward(self, F, cos_logits, label, sample_weight=None):
        cos = self._to_compute_dtype(F, cos_logits)
        index, valid, num_classes = guard_labels(F, label, cos)
        c = F.pick(cos, index, axis=-1)
        target = c - self._m if self._margin == "am" else _arc_target(F, F.clip(c, -1, 1),
                                                                      self._m)
        hard = F.broadcast_greater(cos, F.reshape(target, shape=(-1, 1)))
        # the label column is overwritten below, so it needs no exclusion here
        logits = F.where(hard, cos * (1.0 + self._t) + self._t, cos) * self._s
        logits = _replace_target(F, logits, target * self._s, index, num_classes)
        return self._cross_entropy(F, logits, index, valid, sample_weight)

    def __repr__(self):
        return f"MVSoftmaxLoss(s={self._s}, m={self._m}, t={self._t}, margin={self._margin!r})"


@register_loss(name="curricularface")
class CurricularFaceLoss(StatefulHeadLoss):
    r"""CurricularFace (Huang et al., CVPR 2020): hard negatives weighted by an adaptive ``t``.

    Target logit as :class:`gluonfr.loss.ArcFaceLoss`: ``s*cos(theta_y + m)``, or
    ``s*(cos(theta_y) - sin(pi - m)*m)`` once ``cos(theta_y) <= cos(pi - m)``. A negative j
    is hard when ``cos(theta_j) > cos(theta_y + m)``; its logit becomes
    ``s*cos(theta_j)*(t + cos(theta_j))``, the others stay ``s*cos(theta_j)``. ``t`` follows
    the positive cosines: each training call first sets
    ``t <- alpha*mean_i(cos(theta_{y_i})) + (1 - alpha)*t`` (no gradient), then uses it; it
    starts at 0 (easy negatives are down-weighted early, hard ones up-weighted later).

    Parameters
    ----------
    s : float, default 64.0
    m : float, default 0.5
    alpha : float, default 0.01
        EMA rate of ``t``.
    **kwargs
        ``return_logits``, ``check_label``, ``fast_backward``, ``weight``.

    State: ``t``.
    """

    def __init__(self, s=64.0, m=0.5, alpha=0.01, **kwargs):
        super().__init__(**kwargs)
        s, m, alpha = float(s), float(m), float(alpha)
        _check_finite("CurricularFaceLoss", s=s, m=m, alpha=alpha)
        if s <= 0 or not 0 <= m < math.pi / 2 or not 0 <= alpha <= 1:
            raise ValueError(f"CurricularFaceLoss: needs s > 0, 0 <= m < pi/2, 0 <= alpha "
                             f"<= 1; got s={s}, m={m}, alpha={alpha}")
        self._s, self._m, self._alpha = s, m, alpha
        self._make_states({"t": 0.0})

    def hybrid_forward(self, F, cos_logits, label, *args, t=None):
        _, update, sample_weight = self._split_inputs(args)
        cos = self._to_compute_dtype(F, cos_logits)
        index, valid, num_classes = guard_labels(F, label, cos)
        c = F.clip(F.pick(cos, index, axis=-1), -1.0, 1.0)
        t_old = stop_gradient(F, self._in_compute_dtype(F, t))
        # samples with an invalid label (NaN loss) do not move t
        mean_pos = stop_gradient(F, _valid_mean(F, c, valid))
        u = self._in_compute_dtype(F, F.reshape(update, shape=(1,)))
        t_new = t_old + u * self._alpha * (mean_pos - t_old)
        phi = _arc_target(F, c, self._m)
        hard = F.broadcast_greater(cos, F.reshape(phi, shape=(-1, 1)))
        reweighted = cos * F.broadcast_add(cos, F.reshape(t_new, shape=(1, 1)))
        logits = F.where(hard, reweighted, cos) * self._s
        target = F.where(c > math.cos(math.pi - self._m), phi,
                         c - math.sin(math.pi - self._m) * self._m)
        logits = _replace_target(F, logits, target * self._s, index, num_classes)
        return self._finish(F, logits, index, valid, sample_weight, [t_new])

    def __repr__(self):
        return f"CurricularFaceLoss(s={self._s}, m={self._m}, alpha={self._alpha})"
