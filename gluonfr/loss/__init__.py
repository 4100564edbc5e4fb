"""Face-recognition losses: one registry (:func:`get_loss`) over every head and extra term.

The margin losses take the cosine logits of :class:`gluonfr.nn.NormDense` and sparse class
ids and return the per-sample cross-entropy (N,); ``return_logits=True`` also returns the
scaled, margin-adjusted logits for training accuracy. :func:`get_loss_list` names them all;
:func:`loss_kind` says how each is called (see :mod:`gluonfr.loss.registry`).
"""
from mxnet.gluon.loss import SoftmaxCrossEntropyLoss

from .adaptive import AdaCosLoss, AdaFaceLoss, MagFaceLoss
from .base import SoftmaxHeadLoss, StatefulHeadLoss
from .circle import CircleLoss
from .embedding import CenterLoss, GitLoss, LGMLoss, RingLoss
from .hard_negative import CurricularFaceLoss, MVSoftmaxLoss
from .l2softmax import L2SoftmaxLoss
from .labels import check_labels
from .margin import (
    ArcFaceLoss,
    CombinedMarginLoss,
    CosFaceLoss,
    NormFaceLoss,
    SubCenterArcFaceLoss,
)
from .metric import ContrastiveLoss, MPSLoss, TripletLoss
from .registry import (
    get_loss,
    get_loss_class,
    get_loss_list,
    loss_kind,
    register_loss,
    scale_and_margin_names,
)
from .sphereface import SphereFaceLoss

register_loss(SoftmaxCrossEntropyLoss, name="softmax", kind="logits")

from .compat import ArcLoss, CosLoss, L2Softmax  # noqa: E402  (gluon-face's names, deprecated)

__all__ = ["ArcFaceLoss", "CosFaceLoss", "CombinedMarginLoss", "NormFaceLoss", "L2SoftmaxLoss",
           "SoftmaxCrossEntropyLoss", "SoftmaxHeadLoss", "StatefulHeadLoss", "SphereFaceLoss",
           "SubCenterArcFaceLoss", "MVSoftmaxLoss", "CurricularFaceLoss", "AdaCosLoss",
           "AdaFaceLoss", "MagFaceLoss", "CircleLoss", "CenterLoss", "RingLoss", "GitLoss",
           "LGMLoss", "ContrastiveLoss", "TripletLoss", "MPSLoss", "check_labels", "get_loss",
           "get_loss_class", "get_loss_list", "loss_kind", "register_loss",
           "scale_and_margin_names", "ArcLoss", "CosLoss", "L2Softmax"]
