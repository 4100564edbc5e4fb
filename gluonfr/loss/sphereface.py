"""SphereFace / A-Softmax (Liu et al., CVPR 2017): multiplicative angular margin, annealed."""
import math

from .base import StatefulHeadLoss, stop_gradient
from .labels import guard_labels
from .margin import _arccos, _check_finite, _replace_target
from .registry import register_loss

__all__ = ["SphereFaceLoss"]


@register_loss(name="sphereface")
class SphereFaceLoss(StatefulHeadLoss):
    r"""A-Softmax over cosine logits, with the paper's lambda annealing as explicit state.

    Target logit ``s * (lambda*cos(theta) + psi(theta)) / (1 + lambda)`` with
    ``psi(theta) = (-1)^k cos(m*theta) - 2k`` for ``theta`` in ``[k*pi/m, (k+1)*pi/m]``
    (monotonically decreasing on ``[0, pi]``); non-target logits ``s*cos(theta_j)``. The
    weight of the plain cosine anneals as ``lambda = max(lambda_min,
    base * (1 + gamma*it)^(-power))`` where ``it`` counts the training calls so far: the
    count is a parameter of this block (saved with it, restored on resume) and advances by
    one per call under ``autograd.is_training()``, also when hybridized (gluon-face 1.0.2 kept
    it in a Python attribute that a hybridized graph never sees change).

    The paper multiplies by the feature norm ``|x|``; on NormDense cosines (unit features, as
    gluon-face's ASoftmax) the fixed scale ``s`` stands in for it.

    Parameters
    ----------
    s : float, default 64.0
    m : int, default 4
        Multiplicative angular margin (the paper's m = 4).
    base, gamma, power, lambda_min : float, default 1000, 0.12, 1, 5
        The annealing schedule of the paper's Caffe layer.
    **kwargs
        ``return_logits``, ``check_label``, ``fast_backward``, ``weight`` as in
        :class:`gluonfr.loss.CombinedMarginLoss`.

    Inputs: ``cos`` (N, C), ``label`` (N,). State: ``iteration``.
    """

    def __init__(self, s=64.0, m=4, base=1000.0, gamma=0.12, power=1.0, lambda_min=5.0,
                 **kwargs):
        super().__init__(**kwargs)
        s, base, gamma, power, lambda_min = map(float, (s, base, gamma, power, lambda_min))
        _check_finite("SphereFaceLoss", s=s, base=base, gamma=gamma, power=power,
                      lambda_min=lambda_min)
        if int(m) != m or int(m) < 1:
            raise ValueError(f"SphereFaceLoss: m must be a positive integer, got {m!r}")
        if s <= 0 or base < 0 or gamma < 0 or lambda_min < 0:
            raise ValueError("SphereFaceLoss: s must be > 0 and base, gamma, lambda_min >= 0")
        self._s, self._m = s, int(m)
        self._base, self._gamma, self._power, self._lambda_min = base, gamma, power, lambda_min
        self._make_states({"iteration": 0.0})

    def lambda_at(self, iteration):
        """The annealed lambda after ``iteration`` training calls (the schedule, on the host)."""
        return max(self._lambda_min,
                   self._base * (1.0 + self._gamma * float(iteration)) ** (-self._power))

    def hybrid_forward(self, F, cos_logits, label, *args, iteration=None):
        _, update, sample_weight = self._split_inputs(args)
        cos = self._to_compute_dtype(F, cos_logits)
        index, valid, num_classes = guard_labels(F, label, cos)
        it = stop_gradient(F, self._in_compute_dtype(F, iteration))
        lam = F.maximum(F.power(1.0 + self._gamma * it, -self._power) * self._base,
                        F.ones_like(it) * self._lambda_min)
        c = F.clip(F.pick(cos, index, axis=-1), -1.0, 1.0)
        mtheta = _arccos(F, c) * self._m
        k = F.floor(mtheta / math.pi)
        # the floor of m*theta/pi at theta = pi would be m: psi is continuous there anyway
        k = F.minimum(k, F.ones_like(k) * (self._m - 1))
        sign = 1.0 - 2.0 * (k - 2.0 * F.floor(k / 2.0))
        psi = sign * F.cos(mtheta) - 2.0 * k
        target = F.broadcast_div(F.broadcast_mul(c, lam) + psi, lam + 1.0) * self._s
        logits = _replace_target(F, cos * self._s, target, index, num_classes)
        return self._finish(F, logits, index, valid, sample_weight,
                            [it + self._in_compute_dtype(F, F.reshape(update, shape=(1,)))])

    def __repr__(self):
        return (f"SphereFaceLoss(s={self._s}, m={self._m}, base={self._base}, "
                f"gamma={self._gamma}, power={self._power}, lambda_min={self._lambda_min})")
