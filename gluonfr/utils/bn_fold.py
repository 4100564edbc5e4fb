"""BatchNorm (inference statistics) folded into the convolution before it."""
import numpy as np

__all__ = ["fold_batchnorm"]


def fold_batchnorm(weight, bias, gamma, beta, mean, var, eps):
    """Weights and bias of ``BatchNorm(conv(x))`` as one convolution.

    ``weight`` is (O, ...) and the rest are (O,) arrays (``bias`` zeros for a bias-free
    convolution, ``gamma`` ones for a fixed gamma). Returns float64 ``(weight, bias)``.
    """
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    weight = np.asarray(weight, np.float64) * scale.reshape((-1,) + (1,) * (np.ndim(weight) - 1))
    return weight, beta + (np.asarray(bias, np.float64) - mean) * scale
