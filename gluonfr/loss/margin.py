"""Additive / multiplicative angular margin losses on cosine logits (ArcFace, CosFace, combined).

All of them rewrite only the target column: the (N,) target cosines are picked, the margin is
applied to that vector (in float32 at least), scaled, and written back with one
``index_copy`` into a flat view of the scaled (N, C) matrix. No (N, C) one-hot, mask or
``where`` is built, the transcendental functions run on N values, not N*C, and (by default)
the backward keeps only the log-softmax output. The returned logits are that same matrix.

Gradients are the exact gradients of the formulas as written (no straight-through trick).
``sin(theta)`` is ``sqrt((1 - cos)(1 + cos))`` with the radicand clipped below at 1e-12, so at
``cos = +-1`` the value is off by ~1e-6 and the gradient is finite (the clip stops the
infinite ``d sin / d cos`` there; everywhere else it is exact).
"""
import math

from mxnet import nd

from .base import SoftmaxHeadLoss
from .labels import guard_labels
from .registry import register_loss

__all__ = ["CombinedMarginLoss", "ArcFaceLoss", "CosFaceLoss", "NormFaceLoss",
           "SubCenterArcFaceLoss"]

_SIN2_FLOOR = 1e-12


def _check_finite(cls, **values):
    for name, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"{cls}: {name} must be a finite number, got {value!r}")


def _sin_theta(F, c):
    """sin(arccos(c)) for c in [-1, 1]; (1-c)(1+c) loses less than 1 - c*c near |c| = 1."""
    return F.sqrt(F.clip((1 - c) * (1 + c), _SIN2_FLOOR, 1.0))


def _arccos(F, c):
    """theta = arccos(c) as 2*atan(sqrt((1-c)/(1+c))), each radicand floored at 1e-12.

    Exact inside (-1, 1), off by ~1.4e-6 rad at ``c = +-1``, where its gradient is finite
    (``arccos``'s is infinite there).
    """
    c = F.clip(c, -1.0, 1.0)
    half_tan = (F.sqrt(F.clip(1 - c, _SIN2_FLOOR, 2.0)) / F.sqrt(F.clip(1 + c, _SIN2_FLOOR, 2.0)))
    return 2 * F.arctan(half_tan)


def _replace_target(F, logits, target, index, num_classes):
    """``logits`` (N, C) with column ``index[i]`` of row i replaced by ``target[i]``.

    One ``index_copy`` into the flat (N*C, 1) view: no (N, C) one-hot or mask is built.
    """
    # row i, column label_i of the flat view; counted in int64 (arange_like of the int64
    # index): float rows would be inexact past 2**11 (float16) and N*C may exceed 2**24
    rows = F.contrib.arange_like(index)
    flat = index + F.broadcast_mul(rows, num_classes)
    out = F.contrib.index_copy(F.reshape(logits, shape=(-1, 1)), flat,
                               F.reshape(target, shape=(-1, 1)))
    return F.reshape_like(out, logits)


def _target_mask(F, cos, index):
    """(N, C) int64 mask, 1 at each row's label column (a ``where`` condition)."""
    cols = F.cast(F.contrib.arange_like(cos, axis=1), "int64")
    return F.broadcast_equal(F.reshape(cols, shape=(1, -1)), F.reshape(index, shape=(-1, 1)))


@register_loss(name="combined")
class CombinedMarginLoss(SoftmaxHeadLoss):
    r"""insightface's combined margin: target logit ``s*(cos(m1*theta + m2) - m3)``.

    Non-target logits are ``s*cos(theta_j)``; the loss is the softmax cross-entropy of these
    logits, per sample. Special cases: ``(1, 0, 0)`` is NormFace (plain ``s*cos``, used for
    "loss warm-up"), ``(1, 0, m)`` is CosFace, ``(1, m, 0)`` is ArcFace without its threshold
    branch, ``(1, 0.3, 0.2)`` insightface's "combined", ``m1 > 1`` SphereFace-like.

    As in insightface's MXNet code there is no correction when ``m1*theta + m2`` passes pi,
    where the target logit stops decreasing with theta; :class:`ArcFaceLoss` adds
    insightface's threshold branch for ``m1 = 1, m3 = 0``.

    Parameters
    ----------
    s : float, default 64.0
        Scale (radius of the hypersphere).
    m1, m2, m3 : float, default 1.0, 0.5, 0.0
        Multiplicative angular, additive angular and additive cosine margins.
    return_logits : bool, default False
        Return ``(loss, logits)``: the scaled, margin-adjusted (N, C) logits, detached.
    check_label : bool, default True
        Check labels on the host on every call (see :func:`gluonfr.loss.check_labels`).
    fast_backward : bool, default False
        Faster CPU backward for more memory (see :class:`gluonfr.loss.SoftmaxHeadLoss`).
    weight : float, optional
        Global loss weight.

    Inputs
    ------
    cos_logits : (N, C) cosines from :class:`gluonfr.nn.NormDense` (float16/32/64).
    label : (N,) integer class ids as float32/float64/int32/int64 (never float16).
    sample_weight : (N,), optional.

    Outputs
    -------
    loss : (N,) float32 (float64 for float64 input). NaN for a sample whose label is out of
        range when the host check is off; its gradient is zero.

    Notes
    -----
    The ``m1 != 1`` path computes ``theta = 2*arctan(sqrt((1 - cos)/(1 + cos)))`` with both
    radicands floored at 1e-12: exact inside (-1, 1), off by ~1.4e-6 rad at ``cos = +-1``, where
    its gradient is finite (``arccos``'s is infinite there).
    """

    def __init__(self, s=64.0, m1=1.0, m2=0.5, m3=0.0, **kwargs):
        super().__init__(**kwargs)
        name = self.__class__.__name__
        s, m1, m2, m3 = float(s), float(m1), float(m2), float(m3)
        _check_finite(name, s=s, m1=m1, m2=m2, m3=m3)
        if s <= 0:
            raise ValueError(f"{name}: the scale s must be > 0, got {s}")
        if m1 <= 0:
            raise ValueError(f"{name}: m1 must be > 0, got {m1}")
        self._s, self._m1, self._m2, self._m3 = s, m1, m2, m3
        self._cos_m2, self._sin_m2 = math.cos(m2), math.sin(m2)

    @property
    def s(self):
        """The logit scale."""
        return self._s

    def _has_margin(self):
        return not (self._m1 == 1.0 and self._m2 == 0.0 and self._m3 == 0.0)

    def _target(self, F, cos_y):
        """Margin-adjusted target cosine (before scaling) from the (N,) target cosines."""
        if self._m1 == 1.0 and self._m2 == 0.0:
            return cos_y - self._m3
        c = F.clip(cos_y, -1.0, 1.0)
        if self._m1 == 1.0:
            # cos(theta + m2) by the addition formula: no arccos, exact gradient
            target = c * self._cos_m2 - _sin_theta(F, c) * self._sin_m2
        else:
            target = F.cos(_arccos(F, c) * self._m1 + self._m2)
        return target - self._m3 if self._m3 else target

    def _margin_logits(self, F, cos, index, valid, num_classes):
        """Scaled logits with the margin on each valid row's label column."""
        logits = cos * self._s
        if self._has_margin():
            picked = F.pick(cos, index, axis=-1)
            # an invalid row's index is 0 (a real cosine, so no NaN): it keeps s*cos there
            target = F.where(valid, self._target(F, picked), picked) * self._s
            logits = _replace_target(F, logits, target, index, num_classes)
        return logits

    def margin_logits(self, cos, label):
        """The scaled, margin-adjusted logits this loss would feed its softmax (imperative).

        For a classifier split into class slices (:class:`gluonfr.nn.PartialFC`): a label
        outside ``[0, C)`` of this slice (e.g. -1, "the positive lives in another slice")
        gets no margin and no NaN, its row is just ``s * cos``. Differentiable in ``cos``.

        Parameters
        ----------
        cos : NDArray
            (N, C) cosines (float32 or float64).
        label : NDArray
            (N,) class ids in this slice, or -1 where the positive is elsewhere.

        Returns
        -------
        NDArray
            (N, C) logits, ``cos``'s dtype.
        """
        index, valid, num_classes = guard_labels(nd, label, cos)
        return self._margin_logits(nd, cos, index, valid, num_classes)

    def hybrid_forward(self, F, cos_logits, label, sample_weight=None):
        cos = self._to_compute_dtype(F, cos_logits)
        index, valid, num_classes = guard_labels(F, label, cos)
        logits = self._margin_logits(F, cos, index, valid, num_classes)
        return self._cross_entropy(F, logits, index, valid, sample_weight)

    def __repr__(self):
        return (f"{self.__class__.__name__}(s={self._s}, m1={self._m1}, m2={self._m2}, "
                f"m3={self._m3})")


@register_loss(name="arcface")
class ArcFaceLoss(CombinedMarginLoss):
    r"""ArcFace (additive angular margin) with insightface's threshold branch.

    Target logit ``s*cos(theta + m)``, computed as ``cos*cos(m) - sin*sin(m)``. When
    ``cos(theta) <= cos(pi - m)`` (theta + m would pass pi) the target is
    ``s*(cos(theta) - sin(pi - m)*m)`` instead, which keeps the logit decreasing in theta.
    With ``easy_margin=True`` the margin applies only where ``cos(theta) > 0`` and the target
    is ``s*cos(theta)`` elsewhere. Equals ``CombinedMarginLoss(s, 1, m, 0)`` wherever
    ``cos(theta) > cos(pi - m)``.

    Parameters
    ----------
    s : float, default 64.0
    m : float, default 0.5
        Angular margin in radians, ``0 <= m < pi/2``.
    easy_margin : bool, default False
        insightface's default is False (gluon-face 1.0.2 defaulted to True).
    **kwargs
        ``return_logits``, ``check_label``, ``fast_backward``, ``weight`` as in
        :class:`CombinedMarginLoss`.
    """

    def __init__(self, s=64.0, m=0.5, easy_margin=False, **kwargs):
        m = float(m)
        if not 0.0 <= m < math.pi / 2:
            raise ValueError(f"ArcFaceLoss: the margin m must be in [0, pi/2), got {m}")
        super().__init__(s=s, m1=1.0, m2=m, m3=0.0, **kwargs)
        self._m = m
        self._easy_margin = bool(easy_margin)
        self._threshold = math.cos(math.pi - m)
        self._fallback = math.sin(math.pi - m) * m

    def _target(self, F, cos_y):
        phi = super()._target(F, cos_y)
        c = F.clip(cos_y, -1.0, 1.0)
        if self._easy_margin:
            return F.where(c > 0, phi, c)
        return F.where(c > self._threshold, phi, c - self._fallback)

    def __repr__(self):
        return (f"ArcFaceLoss(s={self._s}, m={self._m}, easy_margin={self._easy_margin})")


@register_loss(name="cosface")
class CosFaceLoss(CombinedMarginLoss):
    r"""CosFace / AM-softmax: target logit ``s*(cos(theta) - m)``.

    Identical to ``CombinedMarginLoss(s, 1, 0, m)``.

    Parameters
    ----------
    s : float, default 64.0
    m : float, default 0.35
        Additive cosine margin (insightface 0.35; arcface_torch 0.40).
    **kwargs
        ``return_logits``, ``check_label``, ``fast_backward``, ``weight`` as in
        :class:`CombinedMarginLoss`.
    """

    def __init__(self, s=64.0, m=0.35, **kwargs):
        super().__init__(s=s, m1=1.0, m2=0.0, m3=m, **kwargs)

    def __repr__(self):
        return f"CosFaceLoss(s={self._s}, m={self._m3})"


@register_loss(name="normface")
class NormFaceLoss(CombinedMarginLoss):
    r"""NormFace (Wang et al., ACM MM 2017; gluon-face's COCO loss): softmax of ``s*cos``.

    No margin: every logit is ``s*cos(theta_j)``. Identical to
    ``CombinedMarginLoss(s, 1, 0, 0)``; also the engine's loss warm-up head.

    Parameters
    ----------
    s : float, default 64.0
    **kwargs
        ``return_logits``, ``check_label``, ``fast_backward``, ``weight`` as in
        :class:`CombinedMarginLoss`.
    """

    def __init__(self, s=64.0, **kwargs):
        super().__init__(s=s, m1=1.0, m2=0.0, m3=0.0, **kwargs)

    def __repr__(self):
        return f"NormFaceLoss(s={self._s})"


@register_loss(name="subcenter_arcface")
class SubCenterArcFaceLoss(ArcFaceLoss):
    r"""Sub-center ArcFace (Deng et al., ECCV 2020): ArcFace over the best of K sub-centres.

    Each class has K centres; the class cosine is the largest of its K cosines, which
    :class:`gluonfr.nn.NormDense` computes with ``centers_per_class=K`` (the training engine
    builds it so from :attr:`centers_per_class`). A noisy image of a class can then sit near
    a non-dominant sub-centre instead of pulling the dominant one. The loss on the class
    cosines is :class:`ArcFaceLoss`.

    Parameters
    ----------
    s : float, default 64.0
    m : float, default 0.5
    k : int, default 3
        Sub-centres per class (the paper's K = 3).
    **kwargs
        As :class:`ArcFaceLoss`.
    """

    def __init__(self, s=64.0, m=0.5, k=3, **kwargs):
        if int(k) != k or int(k) < 1:
            raise ValueError(f"SubCenterArcFaceLoss: k must be a positive integer, got {k!r}")
        super().__init__(s=s, m=m, **kwargs)
        self._k = int(k)

    @property
    def centers_per_class(self):
        """K: the ``centers_per_class`` of the :class:`NormDense` feeding this loss."""
        return self._k

    def __repr__(self):
        return f"SubCenterArcFaceLoss(s={self._s}, m={self._m}, k={self._k})"
