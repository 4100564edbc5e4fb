"""Face-recognition loss heads: ArcFace, CosFace, combined margin, L2-softmax.

The margin losses take the cosine logits of :class:`gluonfr.nn.NormDense` and sparse class
ids and return the per-sample cross-entropy (N,); ``return_logits=True`` also returns the
scaled, margin-adjusted logits for training accuracy. The margin-free NormFace loss (``s*cos``,
used for loss warm-up) is ``CombinedMarginLoss(s, m1=1, m2=0, m3=0)``.
"""
from mxnet.gluon.loss import SoftmaxCrossEntropyLoss

from .base import SoftmaxHeadLoss
from .l2softmax import L2SoftmaxLoss
from .labels import check_labels
from .margin import ArcFaceLoss, CombinedMarginLoss, CosFaceLoss

__all__ = ["ArcFaceLoss", "CosFaceLoss", "CombinedMarginLoss", "L2SoftmaxLoss",
           "SoftmaxCrossEntropyLoss", "SoftmaxHeadLoss", "check_labels"]
