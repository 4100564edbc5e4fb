"""Neural-network layers: cosine-logit heads and a fast per-channel PReLU."""
from .norm_dense import NormDense, l2_normalize
from .prelu import PReLU, native_prelu

__all__ = ["NormDense", "PReLU", "l2_normalize", "native_prelu"]
