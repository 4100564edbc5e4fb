"""gluon-face 1.0.2's architectures, graph for graph, taking 0..255 RGB.

Registered as ``gluonface_mobilefacenet``, ``gluonface_l_se_resnet18v2`` / ``50v2`` /
``101v2``, ``gluonface_attention_facenet`` and ``gluonface_attentionfacenet56`` / ``92``.
gluon-face's parameter files load into them (see :func:`gluonfr.model_zoo.import_model`,
format ``'gluon-face'``).
"""
from . import attention, mobilefacenet, se_resnet
from .attention import GluonFaceAttentionNet
from .base import GluonFaceNet
from .mobilefacenet import GluonFaceMobileFaceNet
from .se_resnet import GluonFaceSEResNet

__all__ = ["GluonFaceNet", "GluonFaceMobileFaceNet", "GluonFaceSEResNet",
           "GluonFaceAttentionNet", "attention", "mobilefacenet", "se_resnet"]
