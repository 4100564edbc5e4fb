"""Neural-network layers for face recognition heads."""
from .norm_dense import NormDense, l2_normalize

__all__ = ["NormDense", "l2_normalize"]
