"""Neural-network layers: cosine-logit heads (replicated and sharded) and a fast PReLU."""
from .norm_dense import NormDense, l2_normalize
from .partial_fc import PartialFC, check_partial_fc_loss, read_classifier_slices, shard_range
from .prelu import PReLU, native_prelu

__all__ = ["NormDense", "PReLU", "PartialFC", "check_partial_fc_loss", "l2_normalize",
           "native_prelu", "read_classifier_slices", "shard_range"]
