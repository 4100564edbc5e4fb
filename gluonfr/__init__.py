"""gluonfr: face recognition with MXNet Gluon.

Embedding networks (MobileFaceNet, IR-ResNet), margin losses (ArcFace, CosFace,
L2-softmax, combined margin), insightface RecordIO / ``.bin`` data, the insightface
verification protocol, and a compact training engine.
"""
import _gluonfr_numpy_hook

from ._optional import missing_mxnet_message

# The installed hook already does this when mxnet is imported; a checkout used through
# PYTHONPATH has no hook, and mxnet 1.9.1 needs the aliases under numpy >= 1.24.
_gluonfr_numpy_hook.restore_numpy_aliases()

__version__ = "2.0.0"

try:
    import mxnet  # noqa: F401
except ModuleNotFoundError as _err:
    if _err.name != "mxnet":
        raise
    raise ImportError(missing_mxnet_message()) from None

from . import data, loss, metrics, model_zoo, nn, utils  # noqa: E402
from .embedder import FaceEmbedder  # noqa: E402

__all__ = ["FaceEmbedder", "__version__", "data", "loss", "metrics", "model_zoo", "nn", "utils"]
