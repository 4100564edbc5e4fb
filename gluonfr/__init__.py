"""gluonfr: face recognition with MXNet Gluon.

Embedding networks (MobileFaceNet, IR-ResNet), margin losses (ArcFace, CosFace,
L2-softmax, combined margin), insightface RecordIO / ``.bin`` data, the insightface
verification protocol, and a compact training engine.
"""
from ._numpy_compat import restore_numpy_aliases

# Must run before anything imports mxnet (gluoncv included): mxnet 1.9.1 needs the aliases.
restore_numpy_aliases()

__version__ = "0.1.0"

from . import data, loss, metrics, model_zoo, nn, utils  # noqa: E402
from .embedder import FaceEmbedder  # noqa: E402

__all__ = ["FaceEmbedder", "__version__", "data", "loss", "metrics", "model_zoo", "nn", "utils"]
