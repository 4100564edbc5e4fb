"""Circle loss (Sun et al., CVPR 2020), class-level form over cosine logits."""
from .base import SoftmaxHeadLoss, stop_gradient
from .labels import guard_labels
from .margin import _check_finite, _replace_target
from .registry import register_loss

__all__ = ["CircleLoss"]


@register_loss(name="circle")
class CircleLoss(SoftmaxHeadLoss):
    r"""Circle loss with class centres as proxies (the paper's classification setting).

    With ``s_p = cos(theta_y)`` and ``s_n = cos(theta_j)``: weights
    ``alpha_p = max(1 + m - s_p, 0)``, ``alpha_n = max(s_n + m, 0)`` (no gradient through
    them, as in the paper), margins ``Delta_p = 1 - m``, ``Delta_n = m``; the target logit is
    ``gamma*alpha_p*(s_p - Delta_p)``, the others ``gamma*alpha_n*(s_n - Delta_n)``, and the
    loss is their softmax cross-entropy,
    ``log(1 + sum_j exp(gamma*alpha_n*(s_n - Delta_n) - gamma*alpha_p*(s_p - Delta_p)))``.
    Requested of gluon-face in its issue 38.

    Parameters
    ----------
    s : float, default 256.0
        The scale gamma.
    m : float, default 0.25
        The relaxation margin.
    **kwargs
        ``return_logits``, ``check_label``, ``fast_backward``, ``weight``.
    """

    def __init__(self, s=256.0, m=0.25, **kwargs):
        super().__init__(**kwargs)
        s, m = float(s), float(m)
        _check_finite("CircleLoss", s=s, m=m)
        if s <= 0:
            raise ValueError(f"CircleLoss: the scale s (gamma) must be > 0, got {s}")
        self._s, self._m = s, m

    def hybrid_forward(self, F, cos_logits, label, sample_weight=None):
        cos = self._to_compute_dtype(F, cos_logits)
        index, valid, num_classes = guard_labels(F, label, cos)
        alpha_n = stop_gradient(F, F.relu(cos + self._m))
        logits = alpha_n * (cos - self._m) * self._s
        sp = F.pick(cos, index, axis=-1)
        alpha_p = stop_gradient(F, F.relu(1.0 + self._m - sp))
        target = alpha_p * (sp - (1.0 - self._m)) * self._s
        logits = _replace_target(F, logits, target, index, num_classes)
        return self._cross_entropy(F, logits, index, valid, sample_weight)

    def __repr__(self):
        return f"CircleLoss(s={self._s}, m={self._m})"
