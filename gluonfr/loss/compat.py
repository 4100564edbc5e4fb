"""gluon-face 1.0.2's loss names, kept as thin deprecated aliases onto gluonfr's losses.

Scripts written for gluon-face (PyPI ``gluonfr==1.0.2``) keep running: ``ArcLoss``,
``CosLoss`` and ``L2Softmax`` take gluon-face's arguments (``classes`` first, its defaults
where they were sensible) and warn with a :class:`DeprecationWarning` naming the gluonfr
class to use. gluon-face's :func:`gluonfr.loss.get_loss` names that gluonfr spells
differently are registered too (see :data:`GLUONFACE_LOSS_NAMES`),
each building gluonfr's loss with the same warning. What was wrong in gluon-face is fixed
here, not reproduced; each class says what.
"""
import math
import warnings

from .margin import ArcFaceLoss, CosFaceLoss, NormFaceLoss
from .registry import get_loss_class, loss_kind, register_loss

__all__ = ["ArcLoss", "CosLoss", "L2Softmax", "GLUONFACE_LOSS_NAMES"]


def _deprecated(old, new):
    warnings.warn(f"{old} is gluon-face's name; use {new} (gluonfr.loss) instead",
                  DeprecationWarning, stacklevel=3)


def _softmax_ce_kwargs(owner, axis=-1, sparse_label=True, batch_axis=0, **kwargs):
    """gluon-face's losses took SoftmaxCrossEntropyLoss's arguments; the ones that change
    nothing pass, the rest is refused by name."""
    if axis not in (-1, 1) or not sparse_label or batch_axis != 0:
        raise ValueError(f"{owner}: gluonfr's losses take (N, classes) logits and (N,) "
                         f"class ids (axis=-1, sparse_label=True, batch_axis=0); got "
                         f"axis={axis!r}, sparse_label={sparse_label!r}, "
                         f"batch_axis={batch_axis!r}")
    return kwargs


class ArcLoss(ArcFaceLoss):
    r"""Deprecated: gluon-face's ``ArcLoss``; use :class:`gluonfr.loss.ArcFaceLoss`.

    Same arguments and defaults as gluon-face 1.0.2, including ``easy_margin=True`` (its
    default; :class:`ArcFaceLoss` and insightface default to ``False``, which gluon-face's
    own train script passed). Called ``loss(cos_logits, label)`` on the cosines of
    ``NormDense(weight_norm=True, feature_norm=True)`` as before.

    Fixed: gluon-face computed ``cos(arccos(cos) + m)`` on unclipped cosines, whose gradient
    is infinite at ``|cos| = 1`` (its issue #37, NaN losses); here it is the addition formula
    with a finite gradient. Labels are never cast to the loss ``dtype`` (gluon-face's
    float16 path corrupted class ids above 2048).

    Parameters
    ----------
    classes : int
        Number of classes (kept for gluon-face's signature; the logits' width is used).
    m : float, default 0.5
    s : float, default 64
    easy_margin : bool, default True
    dtype : str
        Ignored: the loss computes in float32 (float64 for float64 logits).
    **kwargs
        ``weight`` and gluon-face's ``SoftmaxCrossEntropyLoss`` arguments.
    """

    def __init__(self, classes, m=0.5, s=64, easy_margin=True, dtype="float32", **kwargs):
        _deprecated("ArcLoss", "ArcFaceLoss(s, m, easy_margin=False)")
        if not 0 <= m < math.pi / 2:
            raise ValueError(f"ArcLoss: m must be in [0, pi/2), got {m!r}")
        super().__init__(s=s, m=m, easy_margin=easy_margin,
                         **_softmax_ce_kwargs("ArcLoss", **kwargs))
        self.classes = int(classes)


class CosLoss(CosFaceLoss):
    r"""Deprecated: gluon-face's ``CosLoss`` (CosFace / AM-softmax); use
    :class:`gluonfr.loss.CosFaceLoss`.

    Target logit ``s*(cos - m)``. gluon-face required ``m`` and ``s`` although its docstring
    gave 0.4 and 64; those are the defaults here.

    Parameters
    ----------
    classes : int
        Number of classes (kept for gluon-face's signature).
    m : float, default 0.4
    s : float, default 64
    dtype : str
        Ignored (see :class:`ArcLoss`).
    **kwargs
        ``weight`` and gluon-face's ``SoftmaxCrossEntropyLoss`` arguments.
    """

    def __init__(self, classes, m=0.4, s=64, dtype="float32", **kwargs):
        _deprecated("CosLoss", "CosFaceLoss(s, m)")
        super().__init__(s=s, m=m, **_softmax_ce_kwargs("CosLoss", **kwargs))
        self.classes = int(classes)


class L2Softmax(NormFaceLoss):
    r"""Deprecated: gluon-face's ``L2Softmax``; use :class:`gluonfr.loss.NormFaceLoss` (on
    cosines) or :class:`gluonfr.loss.L2SoftmaxLoss` (on the embedding).

    With ``from_normx=True`` (how gluon-face's train script used it, on the cosines of
    ``NormDense(weight_norm=True, feature_norm=True)``: its NormFace loss warm-up) the logits
    are ``alpha * x``: exactly :class:`NormFaceLoss` with ``s=alpha``. The paper's bound is
    kept: ``alpha > log(p (C - 2) / (1 - p))``.

    Fixed: with ``from_normx=False`` gluon-face L2-normalised the *logit vector*, which is
    not L2-softmax (Ranjan et al. normalise the *feature*). That is refused with the two
    correct forms: logits of ``NormDense(feature_norm=True, weight_norm=False)`` (the
    normalised feature times the raw weights) with ``from_normx=True``, or
    ``L2SoftmaxLoss(classes, in_units, alpha)(embedding, label)``.

    Parameters
    ----------
    classes : int
    alpha : float
        Scale.
    p : float, default 0.9
        Target-class probability for the bound on ``alpha``.
    from_normx : bool
        Must be True (see above). gluon-face's default was False.
    **kwargs
        ``weight`` and gluon-face's ``SoftmaxCrossEntropyLoss`` arguments.
    """

    def __init__(self, classes, alpha, p=0.9, from_normx=False, **kwargs):
        _deprecated("L2Softmax", "NormFaceLoss(s=alpha) on cosines")
        if not from_normx:
            raise ValueError(
                "L2Softmax(from_normx=False) L2-normalised the logit vector in gluon-face, "
                "which is not L2-softmax (the feature is normalised, not the logits). Feed "
                "the logits of NormDense(feature_norm=True, weight_norm=False) with "
                "from_normx=True, or use gluonfr.loss.L2SoftmaxLoss(classes, in_units, "
                "alpha)(embedding, label)")
        if not 0 < p < 1 or classes < 3:
            raise ValueError(f"L2Softmax: needs 0 < p < 1 and classes >= 3, got p={p!r}, "
                             f"classes={classes!r}")
        bound = math.log(p * (classes - 2) / (1 - p))
        if not alpha > bound:
            raise ValueError(f"L2Softmax: alpha={alpha!r} is below the L2-softmax bound "
                             f"log(p (C - 2) / (1 - p)) = {bound:.3f} for C={classes}, p={p}")
        super().__init__(s=alpha, **_softmax_ce_kwargs("L2Softmax", **kwargs))
        self.classes = int(classes)


def _svx_kwargs(s=None, t=1.0, m1=1.0, m2=0.0, m3=0.0, classes=None, dtype=None, **kwargs):
    # gluon-face's SVXSoftmax: target cos(m1*theta + m3) - m2, hard negatives t*cos + t - 1,
    # i.e. MVSoftmaxLoss with t - 1 and one of its two margins
    if m1 != 1.0 or (m2 and m3):
        raise ValueError(f"get_loss('svxsoftmax'): gluonfr's MVSoftmaxLoss takes one additive "
                         f"margin, cosine (m2) or angular (m3), and m1=1; got m1={m1!r}, "
                         f"m2={m2!r}, m3={m3!r}")
    out = dict(kwargs, t=t - 1.0, m=m3 or m2, margin="arc" if m3 else "am")
    if s is not None:
        out["s"] = s
    return out


def _convert(drop=(), **renames):
    """Drop gluon-face-only arguments (``classes`` and ``dtype`` unless kept by a rename) and
    rename the others."""
    drop = set(drop) | ({"classes", "dtype"} - set(renames) - set(renames.values()))

    def convert(**kwargs):
        return {renames.get(k, k): v for k, v in kwargs.items() if k not in drop}
    return convert


#: gluon-face's ``get_loss`` name -> (gluonfr name, argument conversion). gluon-face's
#: registry lower-cased the name before looking up ``'cosLoss'``, so that one was
#: unreachable; here it works. ``arcface``, ``softmax``, ``l2softmax`` and ``triplet`` are
#: gluonfr's own names (gluonfr's classes). The built loss is gluonfr's and is called as
#: gluonfr's (:func:`gluonfr.loss.loss_kind`): e.g. ring, centre and git losses are extra
#: terms ``loss(embedding, label)`` beside the classification head, where gluon-face's
#: classes added the softmax themselves; gluonfr's contrastive loss uses the Euclidean
#: distance (gluon-face's took the norm of the *squared* difference); gluon-face's
#: ``cocoloss`` (which owned its class centres) has no alias: ``NormDense`` and
#: ``NormFaceLoss(s=alpha)`` compute it.
GLUONFACE_LOSS_NAMES = {
    "cosloss": ("cosface", _convert()),
    "asoftmax": ("sphereface", _convert(drop=("phiflag",))),
    "svxsoftmax": ("mv_softmax", _svx_kwargs),
    "ringloss": ("ring", _convert(classes="classes")),
    "centerloss": ("center", _convert(classes="classes", embedding_size="in_units")),
    "gitloss": ("git", _convert(drop=("batch_size_per_gpu",), classes="classes",
                                embedding_size="in_units")),
    "lgmloss": ("lgm", _convert(drop=("lr_mult",), num_classes="classes",
                                embedding_size="in_units")),
    "contrastiveloss": ("contrastive", _convert()),
    "mpsloss": ("mps", _convert(m="margin")),
    "mpsoss": ("mps", _convert(m="margin")),  # gluon-face's registry spelled it so
}


def _alias(old, new, convert):
    target = get_loss_class(new)

    def build(**kwargs):
        _deprecated(f"get_loss({old!r})", f"get_loss({new!r})")
        return target(**convert(**kwargs))

    build.__name__ = old
    build.__doc__ = (f"Deprecated gluon-face name of ``get_loss({new!r})`` (gluon-face's "
                     f"arguments converted).")
    register_loss(build, name=old, kind=loss_kind(new))


for _old, (_new, _convert) in GLUONFACE_LOSS_NAMES.items():
    _alias(_old, _new, _convert)
