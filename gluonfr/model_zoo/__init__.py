"""Face-embedding networks by name, with published parameters from the model store.

>>> net = get_model('mobilefacenet')          # initialised, ready to train
>>> net.embedding_size
128

Adding an architecture: a module whose constructors carry :func:`register_model`, imported
below.
"""
from . import gluonface, iresnet, mobilefacenet  # noqa: F401  (registers the models)
from .importers import get_format_list, import_model
from .iresnet import IResNet, IRUnit
from .loading import load_embedding_net
from .mobilefacenet import MobileFaceNet
from .model_store import get_model_card, get_model_file, publish_model, purge, store_network
from .model_zoo import default_initializer, get_model
from .registry import get_model_list, register_model

__all__ = ["get_model", "get_model_list", "get_model_file", "register_model", "publish_model",
           "purge", "default_initializer", "import_model", "load_embedding_net",
           "get_format_list", "get_model_card", "store_network", "MobileFaceNet",
           "IResNet", "IRUnit"]
